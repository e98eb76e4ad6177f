"""One error shape for the whole API: RFC 7807 problem details, as Replicate sends them."""

from __future__ import annotations

import math
from typing import Any

import redis
from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import Http404, HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from marketplace.billing.services import PaymentRequired
from marketplace.predictions.refusals import (
    CreateRefused,
    DeploymentOffline,
    DestinationRefused,
    InputValidationError,
    InvalidParameter,
    NotTrainable,
    QueueUnavailable,
)

PROBLEM_JSON = "application/problem+json"

_TITLES = {
    400: "Bad request",
    401: "Unauthenticated",
    402: "Payment required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict",
    413: "Request entity too large",
    415: "Unsupported media type",
    422: "Unprocessable entity",
    429: "Too many requests",
}


# Field errors listed in one problem document; a count says how many there were in all.
MAX_FIELD_ERRORS = 20


def problem(status_code: int, detail: str, title: str | None = None, **extra: Any) -> Response:
    fields = extra.get("invalid_fields")
    if isinstance(fields, list) and len(fields) > MAX_FIELD_ERRORS:
        # 100k unknown input keys once made a 15 MB answer: list the first few, count the rest.
        extra["invalid_fields"] = fields[:MAX_FIELD_ERRORS]
        extra["invalid_fields_count"] = len(fields)
        lines = detail.splitlines(keepends=True)[:MAX_FIELD_ERRORS]
        detail = "".join(lines) + f"- … and {len(fields) - MAX_FIELD_ERRORS} more\n"
    body: dict[str, Any] = {"title": title or _TITLES.get(status_code, "Error"), "detail": detail}
    body["status"] = status_code
    body.update(extra)
    return Response(body, status=status_code, content_type=PROBLEM_JSON)


class Problem(exceptions.APIException):
    """Raise from a view to answer with a problem document."""

    def __init__(self, status_code: int, detail: str, title: str | None = None, **extra: Any):
        self.status_code = status_code
        self.title = title
        self.extra = extra
        super().__init__(detail)

    @classmethod
    def for_fields(
        cls,
        fields: list[dict[str, str]],
        title: str = "Input validation failed",
        status_code: int = 422,
    ) -> Problem:
        """Field errors (``{type, field, description}``): a line per field in ``detail``."""
        detail = "".join(f"- {f['field']}: {f['description']}\n" for f in fields)
        return cls(status_code, detail, title, invalid_fields=fields)


def field_problem(
    fields: list[dict[str, str]], title: str = "Input validation failed", status_code: int = 422
) -> Response:
    """The one problem document for field errors: a line per field in ``detail``, and
    ``invalid_fields`` as ``{type, field, description}``."""
    exc = Problem.for_fields(fields, title, status_code)
    return problem(exc.status_code, str(exc.detail), exc.title, **exc.extra)


def refusal_problem(exc: CreateRefused) -> Response:
    """What the API answers when the create path refuses."""
    if isinstance(exc, InputValidationError):
        return field_problem([e.as_dict() for e in exc.errors])
    if isinstance(exc, InvalidParameter):
        description = f"{exc.field} {exc.message}"
        field = {"type": "invalid", "field": exc.field, "description": exc.message}
        return problem(400, description, "Invalid " + exc.field, invalid_fields=[field])
    if isinstance(exc, PaymentRequired):
        return problem(402, str(exc), "Insufficient credit")
    if isinstance(exc, DeploymentOffline):
        return problem(409, str(exc), "Deployment is offline")
    if isinstance(exc, QueueUnavailable):
        return unavailable(str(exc), exc.retry_after)
    if isinstance(exc, DestinationRefused):
        field = {"type": "invalid", "field": "destination", "description": exc.message}
        titles = {403: "Destination not writable", 404: "Destination not found"}
        return problem(
            exc.status,
            exc.message,
            titles.get(exc.status, "Invalid destination"),
            invalid_fields=[field],
        )
    if isinstance(exc, NotTrainable):
        return problem(422, str(exc), "Model is not trainable")
    return problem(400, str(exc))


def unavailable(detail: str, retry_after: int) -> Response:
    """503 with ``Retry-After``: a service the request needs (Redis) does not answer."""
    response = problem(503, detail, "Service unavailable")
    response["Retry-After"] = str(retry_after)
    return response


def invalid(field: str, description: str) -> Problem:
    """A 400 naming one field of the request."""
    return Problem(
        400,
        f"- {field}: {description}\n",
        "Invalid request",
        invalid_fields=[{"type": "invalid", "field": field, "description": description}],
    )


def too_large(limit: int) -> Problem:
    return Problem(
        413, f"The request body must be at most {limit:,} bytes", "Request entity too large"
    )


def _flatten(detail: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(detail, dict):
        return [
            pair for key, value in detail.items() for pair in _flatten(value, f"{prefix}{key}.")
        ]
    if isinstance(detail, list):
        return [pair for item in detail for pair in _flatten(item, prefix)]
    return [(prefix.rstrip(".") or "body", str(detail))]


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, Problem):
        return problem(exc.status_code, str(exc.detail), exc.title, **exc.extra)
    if isinstance(exc, CreateRefused):
        return refusal_problem(exc)
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        response = problem(401, "You did not pass a valid authentication token", "Unauthenticated")
        response["WWW-Authenticate"] = 'Bearer realm="api"'
        return response
    if isinstance(exc, Http404 | exceptions.NotFound):
        return problem(404, "The requested resource could not be found.")
    if isinstance(exc, RequestDataTooBig):  # Django's DATA_UPLOAD_MAX_MEMORY_SIZE
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 0
        return problem(413, str(too_large(limit).detail), "Request entity too large")
    if isinstance(exc, TooManyFieldsSent | TooManyFilesSent):
        return problem(400, str(exc), "Invalid request")
    if isinstance(exc, exceptions.ValidationError):
        pairs = _flatten(exc.detail)
        fields = [{"type": "invalid", "field": f, "description": m} for f, m in pairs]
        return field_problem(fields, "Invalid request", 400)
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError | redis.ReadOnlyError):
        # Redis down, restarting or failing over (the rate limit is usually first to notice):
        # nothing was stored yet, and the client may simply try again.
        return unavailable(
            "A service this request needs does not answer; try again shortly.",
            QueueUnavailable.retry_after,
        )
    if isinstance(exc, exceptions.Throttled):
        wait = max(1, math.ceil(getattr(exc, "wait", None) or 1))
        response = problem(
            429, f"Request was throttled. Expected available in {wait} second{'s' * (wait != 1)}."
        )
        response["Retry-After"] = str(wait)
        return response
    fallback: Response | None = drf_exception_handler(exc, context)
    if fallback is not None and isinstance(exc, exceptions.APIException):
        return problem(
            fallback.status_code or status.HTTP_500_INTERNAL_SERVER_ERROR, str(exc.detail)
        )
    return fallback


def body_too_large(limit: int) -> JsonResponse:
    """413 as a problem document, for middleware that refuses before any view runs."""
    body = {"title": _TITLES[413], "detail": str(too_large(limit).detail), "status": 413}
    return JsonResponse(body, status=413, content_type=PROBLEM_JSON)


@csrf_exempt
def not_found(request: HttpRequest, path: str = "") -> JsonResponse:
    """Any ``/v1`` path no route matches (including ids with characters no route accepts): a
    problem document like every other API error, not the site's HTML 404 page."""
    body = {"title": _TITLES[404], "detail": "The requested resource could not be found."}
    return JsonResponse({**body, "status": 404}, status=404, content_type=PROBLEM_JSON)
