"""The registry's two callbacks into Django: the token endpoint and the notification sink."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from marketplace.registry import services, tokens

logger = logging.getLogger(__name__)


def _error(status: int, code: str, message: str) -> JsonResponse:
    response = JsonResponse({"errors": [{"code": code, "message": message}]}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Basic realm="registry"'
    return response


@require_GET
def token(request: HttpRequest) -> JsonResponse:
    """``GET /registry/token?service=…&scope=…`` with HTTP Basic → a scoped JWT.

    Authenticated callers always get 200 and a token, even with nothing granted (``docker login``
    asks for no scope at all); only bad credentials get 401.
    """
    principal: tokens.Principal | None = None
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if header:
        kind, _, encoded = header.partition(" ")
        if kind.lower() != "basic":
            return _error(401, "UNAUTHORIZED", "Use HTTP Basic authentication")
        try:
            username, sep, password = base64.b64decode(encoded.strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return _error(401, "UNAUTHORIZED", "Malformed Basic credentials")
        principal = tokens.authenticate_basic(username, password) if sep else None
        if principal is None:
            return _error(
                401, "UNAUTHORIZED", "Bad credentials: use your username and an API token"
            )
    service = request.GET.get("service")
    if service and service != settings.REGISTRY_SERVICE:
        return _error(400, "INVALID_REQUEST", f"Unknown service {service!r}")
    access = tokens.grant(principal, tokens.parse_scopes(request.GET.getlist("scope")))
    jwt = tokens.mint(principal.name if principal else "", access)
    return JsonResponse(
        {
            "token": jwt,
            "access_token": jwt,
            "expires_in": settings.REGISTRY_TOKEN_TTL,
            "issued_at": timezone.now().isoformat(),
        }
    )


@csrf_exempt
@require_POST
def events(request: HttpRequest) -> JsonResponse:
    """The registry's notification endpoint (``Authorization: Bearer <shared secret>``)."""
    expected = f"Bearer {tokens.notify_secret()}"
    if not hmac.compare_digest(request.META.get("HTTP_AUTHORIZATION", ""), expected):
        return _error(401, "UNAUTHORIZED", "Missing or wrong notification secret")
    try:
        envelope = json.loads(request.body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _error(400, "INVALID_REQUEST", "The body is not JSON")
    if not isinstance(envelope, dict):
        return _error(400, "INVALID_REQUEST", "The body must be an event envelope")
    try:
        records = services.handle_notification(envelope)
    except services.RegistryError as exc:
        # Non-2xx makes the registry deliver the envelope again later.
        logger.warning("registry notification deferred: %s", exc)
        return _error(503, "UNAVAILABLE", str(exc))
    return JsonResponse(
        {"processed": [{"repository": r.repository, "digest": r.digest, "outcome": r.outcome,
                        "deleted": r.deleted_at is not None}
                       for r in records]}
    )  # fmt: skip
