"""``/v1/predictions`` and ``/v1/models/{owner}/{name}/predictions``: create (with ``Prefer: wait``
and ``Cancel-After``), list, get and cancel."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from marketplace.accounts.models import ApiToken, User, signed_in
from marketplace.api import openapi as o
from marketplace.api.authentication import acting_account
from marketplace.api.errors import Problem
from marketplace.api.pagination import CursorPage
from marketplace.api.throttles import ApiRateThrottle, CreateRateThrottle
from marketplace.catalog.models import Model, Version
from marketplace.deployments.models import Deployment
from marketplace.deployments.transparency import with_queue
from marketplace.files.access import prime
from marketplace.predictions import deadlines, events
from marketplace.predictions.models import Prediction
from marketplace.predictions.serializers import (
    ModelPredictionCreateInput,
    PredictionCreateInput,
)
from marketplace.predictions.services import (
    InputValidationError,
    PaymentRequired,
    prediction_cancel,
    prediction_create,
)

PREFER_WAIT_RE = re.compile(r"^wait(?:=([0-9]{1,2}))?$")
MAX_WAIT_SECONDS = 60
# Bounded digit runs: int() refuses numbers of thousands of digits with a ValueError.
DURATION_RE = re.compile(r"^(?:(\d{1,12})h)?(?:(\d{1,12})m)?(?:(\d{1,15}(?:\.\d{1,9})?)s)?$")
MIN_CANCEL_AFTER = timedelta(seconds=5)
INVALID_VERSION = (
    "The specified version does not exist (or perhaps you don't have permission to use it?)"
)


def parse_prefer_wait(header: str | None) -> tuple[int, str] | None:
    """``Prefer: wait[=N]`` → (seconds to hold the request, the preference to echo as applied)."""
    if not header:
        return None
    for preference in (p.strip() for p in header.split(",")):
        if preference.startswith("wait"):
            match = PREFER_WAIT_RE.match(preference)
            seconds = int(match.group(1) or MAX_WAIT_SECONDS) if match else 0
            if not 1 <= seconds <= MAX_WAIT_SECONDS:
                raise Problem(
                    400,
                    "Prefer must be 'wait' or 'wait=N' with N from 1 to 60",
                    "Invalid Prefer header",
                )
            return seconds, preference
    return None


def parse_duration(value: str | None, field: str) -> timedelta | None:
    """``Cancel-After`` / ``lifetime``: ``1h30m45s``, ``5m``, ``90s`` or bare seconds; from 5 s
    to ``PREDICTION_MAX_LIFETIME``."""
    if value is None or not str(value).strip():
        return None
    text = str(value).strip().lower()
    if re.fullmatch(r"\d{1,15}(?:\.\d{1,9})?", text):
        seconds = float(text)
    elif (match := DURATION_RE.match(text)) and any(match.groups()):
        hours, minutes, secs = match.groups()
        seconds = int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(secs or 0)
    else:
        raise Problem(
            400, f"{field} must be a duration such as 90s, 5m or 1h30m", "Invalid " + field
        )
    # Compared as plain numbers: timedelta (and a deadline from it) overflows long before.
    if seconds < MIN_CANCEL_AFTER.total_seconds():
        raise Problem(400, f"{field} must be at least 5 seconds", "Invalid " + field)
    longest = settings.PREDICTION_MAX_LIFETIME
    if seconds > longest:
        raise Problem(400, f"{field} must be at most {longest} seconds", "Invalid " + field)
    return timedelta(seconds=seconds)


def _predictions_of(user: User) -> Any:
    """The predictions of the account the caller's token acts for (any member's)."""
    return (
        Prediction.objects.select_related("model__owner", "version", "hardware", "instance")
        .defer("version__openapi_schema")
        .filter(account=user.account)
    )


def _prediction_for(request: Request, prediction_id: str) -> Prediction:
    """The prediction if the caller's account owns it; 404 for everyone else."""
    prediction = _predictions_of(signed_in(request.user)).filter(pk=prediction_id).first()
    if prediction is None:
        raise Problem(404, "The requested resource could not be found.")
    return prediction


def _create(
    request: Request, version: Version, data: dict[str, Any], deployment: Deployment | None = None
) -> Response:
    """The part every create endpoint shares, after it has found the version (and deployment)."""
    user = signed_in(request.user)
    account = acting_account(request, write=True)
    deadline: datetime | None = None
    lifetime = parse_duration(request.headers.get("Cancel-After"), "Cancel-After") or (
        parse_duration(data.get("lifetime"), "lifetime")
    )
    if lifetime is not None:
        deadline = timezone.now() + lifetime
    try:
        prediction = prediction_create(
            version=version,
            input=data["input"],
            account=account,
            created_by=user,
            created_by_token=request.auth if isinstance(request.auth, ApiToken) else None,
            webhook=data.get("webhook") or "",
            webhook_events_filter=data.get("webhook_events_filter"),
            deadline=deadline,
            deployment=deployment,
        )
    except PaymentRequired as exc:
        raise Problem(402, str(exc), "Insufficient credit") from exc
    except InputValidationError as exc:
        raise Problem(
            422,
            "".join(f"- {e.field}: {e.description}\n" for e in exc.errors),
            "Input validation failed",
            invalid_fields=[e.as_dict() for e in exc.errors],
        ) from exc
    deadlines.schedule(prediction)
    # Already loaded: no extra query.
    prediction.hardware = deployment.hardware if deployment else version.model.default_hardware
    body = with_queue(prediction.to_api(), prediction)
    return Response(body, status=201, headers={"Location": body["urls"]["get"]})


class PredictionCollectionApi(APIView):
    """``GET`` lists the caller's predictions; ``POST`` creates one."""

    def get_throttles(self) -> list[BaseThrottle]:
        return [CreateRateThrottle() if self.request.method == "POST" else ApiRateThrottle()]

    @extend_schema(
        operation_id="predictions.list",
        responses=o.PredictionPage,
        parameters=[
            OpenApiParameter("created_after", str),
            OpenApiParameter("created_before", str),
            OpenApiParameter("source", str, enum=["api", "web"]),
            o.CURSOR,
        ],
    )
    def get(self, request: Request) -> Response:
        predictions = _predictions_of(signed_in(request.user))
        for param, lookup in (("created_after", "gte"), ("created_before", "lt")):
            if raw := request.query_params.get(param):
                when = parse_datetime(raw)
                if when is None:
                    raise Problem(400, f"{param} must be an ISO 8601 date-time", "Invalid " + param)
                if timezone.is_naive(when):
                    when = timezone.make_aware(when, UTC)
                predictions = predictions.filter(**{f"created_at__{lookup}": when})
        if source := request.query_params.get("source"):
            predictions = predictions.filter(source=source)
        paginator: CursorPage = CursorPage()
        page: list[Prediction] | None = paginator.paginate_queryset(predictions, request, view=self)
        prime(page or [])  # the page's file rows in one go, not per prediction
        return paginator.get_paginated_response([with_queue(p.to_api(), p) for p in page or []])

    @extend_schema(
        operation_id="predictions.create",
        request=PredictionCreateInput,
        responses={201: o.PredictionOut},
        parameters=[o.PREFER, o.CANCEL_AFTER],
    )
    def post(self, request: Request) -> Response:
        parse_prefer_wait(request.headers.get("Prefer"))  # reject a malformed header before work
        body = PredictionCreateInput(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        version = Version.objects.visible_to(signed_in(request.user)).resolve(data["version"])
        if version is None:
            raise Problem(422, INVALID_VERSION, "Invalid version or not permitted")
        return _create(request, version, data)


class ModelPredictionCreateApi(APIView):
    """``POST /v1/models/{owner}/{name}/predictions``: run the model's latest version."""

    throttle_classes = [CreateRateThrottle]

    @extend_schema(
        operation_id="models.predictions.create",
        request=ModelPredictionCreateInput,
        responses={201: o.PredictionOut},
        parameters=[o.PREFER, o.CANCEL_AFTER],
    )
    def post(self, request: Request, owner: str, name: str) -> Response:
        parse_prefer_wait(request.headers.get("Prefer"))
        model = (
            Model.objects.visible_to(signed_in(request.user))
            .filter(owner__username__iexact=owner, name=name)
            .first()
        )
        if model is None:
            raise Problem(404, "The requested resource could not be found.")
        body = ModelPredictionCreateInput(data=request.data)
        body.is_valid(raise_exception=True)
        version = (
            Version.objects.select_related("model__owner", "model__default_hardware")
            .defer("openapi_schema")
            .filter(model=model, hidden=False)
            .order_by("-created_at")
            .first()
        )
        if version is None:
            raise Problem(422, "This model has no version to run yet", "Model has no versions")
        return _create(request, version, body.validated_data)


class PredictionDetailApi(APIView):
    @extend_schema(operation_id="predictions.get", responses=o.PredictionOut)
    def get(self, request: Request, prediction_id: str) -> Response:
        prediction = _prediction_for(request, prediction_id)
        return Response(with_queue(prediction.to_api(), prediction))


class PredictionCancelApi(APIView):
    @extend_schema(operation_id="predictions.cancel", request=None, responses=o.PredictionOut)
    def post(self, request: Request, prediction_id: str) -> Response:
        prediction = _prediction_for(request, prediction_id)
        acting_account(request, write=True)
        prediction = prediction_cancel(prediction)
        return Response(prediction.to_api())


_collection_view = PredictionCollectionApi.as_view()
_model_create_view = ModelPredictionCreateApi.as_view()


def _load_api(prediction_id: str) -> dict[str, Any]:
    prediction = (
        Prediction.objects.select_related("model__owner", "version", "hardware", "instance")
        .defer("version__openapi_schema")
        .get(pk=prediction_id)
    )
    return with_queue(prediction.to_api(), prediction)


async def _create_and_wait(view: Any, request: HttpRequest, **kwargs: Any) -> HttpResponse:
    """Run a create view, then hold the request for ``Prefer: wait`` on the event loop."""
    response = await sync_to_async(view)(request, **kwargs)
    if request.method != "POST" or response.status_code != 201:
        return response
    wait = parse_prefer_wait(request.headers.get("Prefer"))
    if wait is None:
        return response
    seconds, applied = wait
    prediction_id = response.data["id"]
    done = await events.await_done(prediction_id, seconds)
    body = await sync_to_async(_load_api)(prediction_id)
    if done is None and body["status"] not in Prediction.TERMINAL:
        # The clients treat anything but "starting" as final and stop polling (rule 8).
        body["status"] = Prediction.Status.STARTING
    out = JsonResponse(body, status=201)
    out["Location"] = body["urls"]["get"]
    out["Preference-Applied"] = applied
    return out


@csrf_exempt
async def predictions_root(request: HttpRequest) -> HttpResponse:
    """``/v1/predictions``: list (GET) and create (POST, with ``Prefer: wait``)."""
    return await _create_and_wait(_collection_view, request)


@csrf_exempt
async def model_predictions_create(request: HttpRequest, owner: str, name: str) -> HttpResponse:
    return await _create_and_wait(_model_create_view, request, owner=owner, name=name)


# The schema generator documents the DRF view each async wrapper runs.
_wrapper: Any
for _wrapper, _view_class in (
    (predictions_root, PredictionCollectionApi),
    (model_predictions_create, ModelPredictionCreateApi),
):
    _wrapper.cls = _view_class
    _wrapper.initkwargs = {}


# The old name of the create view, kept for anything that imported it.
predictions_create = predictions_root
