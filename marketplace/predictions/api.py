"""``/v1/predictions`` and ``/v1/models/{owner}/{name}/predictions``: create (with ``Prefer: wait``
and ``Cancel-After``), list, get and cancel."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from marketplace import hotcache
from marketplace.accounts.models import ApiToken, User, signed_in
from marketplace.api import openapi as o
from marketplace.api.authentication import acting_account
from marketplace.api.errors import Problem
from marketplace.api.pagination import CursorPage
from marketplace.api.throttles import ApiRateThrottle, CreateRateThrottle
from marketplace.catalog.models import Model, Version
from marketplace.deployments.models import Deployment
from marketplace.files.access import prime
from marketplace.predictions.models import Prediction
from marketplace.predictions.serializers import (
    ModelPredictionCreateInput,
    PredictionCreateInput,
)
from marketplace.predictions.services import prediction_cancel, prediction_create
from marketplace.predictions.waiting import api_body, create_and_wait, created, parse_prefer_wait

INVALID_VERSION = (
    "The specified version does not exist (or perhaps you don't have permission to use it?)"
)


def _predictions_of(user: User) -> Any:
    """The predictions of the account the caller's token acts for (any member's)."""
    return (
        Prediction.objects.select_related("model__owner", "version", "hardware", "instance")
        .defer("version__openapi_schema")
        .filter(account=user.account)
    )


def prediction_of_caller(request: Request, prediction_id: str) -> Prediction:
    """The prediction if the caller's account owns it; 404 for everyone else."""
    return prediction_of(signed_in(request.user), prediction_id)


def prediction_of(user: User, prediction_id: str) -> Prediction:
    """:func:`prediction_of_caller` for a user (the MCP tools look predictions up this way).
    The row and its instance in one read; what it shows of the catalog from the hot cache."""
    prediction = (
        Prediction.objects.select_related("instance")
        .filter(account=user.account, pk=prediction_id)
        .first()
    )
    if prediction is None:
        raise Problem(404, "The requested resource could not be found.")
    hotcache.attach_catalog(prediction)
    return prediction


def predictions_of(user: User) -> Any:
    """The predictions the caller's token may list, newest first."""
    return _predictions_of(user).order_by("-created_at", "-pk")


def version_to_run(user: User, ref: str) -> Version:
    """The version ``ref`` (an id, ``owner/name:id`` or ``owner/name``) names, if ``user`` may
    run it; the API's 422 otherwise."""
    version = hotcache.public_version(
        "ref", ref, load=lambda: Version.objects.all().resolve(ref)
    ) or Version.objects.visible_to(user).resolve(ref)
    if version is None:
        raise Problem(422, INVALID_VERSION, "Invalid version or not permitted")
    return version


def _create(
    request: Request,
    data: dict[str, Any],
    *,
    version: Version | None = None,
    deployment: Deployment | None = None,
) -> Response:
    """Hand a parsed create request to the one create path and render what it made. Its
    refusals become problem documents in ``api.errors``."""
    parse_prefer_wait(request.headers.get("Prefer"))  # a malformed header is refused before work
    prediction = prediction_create(
        version=version,
        deployment=deployment,
        input=data["input"],
        account=acting_account(request, write=True),
        created_by=signed_in(request.user),
        created_by_token=request.auth if isinstance(request.auth, ApiToken) else None,
        webhook=data.get("webhook") or "",
        webhook_events_filter=data.get("webhook_events_filter"),
        cancel_after=request.headers.get("Cancel-After"),
        lifetime=data.get("lifetime"),
    )
    return created(prediction)


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
        # Trainings have their own list (/v1/trainings), as on Replicate.
        predictions = _predictions_of(signed_in(request.user)).filter(
            kind=Prediction.Kind.PREDICTION
        )
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
        return paginator.get_paginated_response([api_body(p) for p in page or []])

    @extend_schema(
        operation_id="predictions.create",
        request=PredictionCreateInput,
        responses={201: o.PredictionOut},
        parameters=[o.PREFER, o.CANCEL_AFTER],
    )
    def post(self, request: Request) -> Response:
        parse_prefer_wait(request.headers.get("Prefer"))
        body = PredictionCreateInput(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        version = version_to_run(signed_in(request.user), data["version"])
        return _create(request, data, version=version)


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
        version = hotcache.public_version(
            "model", owner, name, load=lambda: Version.objects.all().resolve(f"{owner}/{name}")
        )
        if version is None:
            model = Model.objects.visible_to(signed_in(request.user)).named(owner, name)
            if model is None:
                raise Problem(404, "The requested resource could not be found.")
            version = (
                Version.objects.select_related("model__owner", "model__default_hardware")
                .defer("openapi_schema")
                .latest_of(model)
            )
        body = ModelPredictionCreateInput(data=request.data)
        body.is_valid(raise_exception=True)
        if version is None:
            raise Problem(422, "This model has no version to run yet", "Model has no versions")
        return _create(request, body.validated_data, version=version)


class PredictionDetailApi(APIView):
    @extend_schema(operation_id="predictions.get", responses=o.PredictionOut)
    def get(self, request: Request, prediction_id: str) -> Response:
        return Response(api_body(prediction_of_caller(request, prediction_id)))


class PredictionCancelApi(APIView):
    @extend_schema(operation_id="predictions.cancel", request=None, responses=o.PredictionOut)
    def post(self, request: Request, prediction_id: str) -> Response:
        prediction = prediction_of_caller(request, prediction_id)
        acting_account(request, write=True)
        prediction = prediction_cancel(prediction)
        return Response(prediction.to_api())


_collection_view = PredictionCollectionApi.as_view()
_model_create_view = ModelPredictionCreateApi.as_view()


@csrf_exempt
async def predictions_root(request: HttpRequest) -> HttpResponse:
    """``/v1/predictions``: list (GET) and create (POST, with ``Prefer: wait``)."""
    return await create_and_wait(_collection_view, request)


@csrf_exempt
async def model_predictions_create(request: HttpRequest, owner: str, name: str) -> HttpResponse:
    return await create_and_wait(_model_create_view, request, owner=owner, name=name)


# The schema generator documents the DRF view each async wrapper runs.
_wrapper: Any
for _wrapper, _view_class in (
    (predictions_root, PredictionCollectionApi),
    (model_predictions_create, ModelPredictionCreateApi),
):
    _wrapper.cls = _view_class
    _wrapper.initkwargs = {}
