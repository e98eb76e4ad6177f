"""``/v1/deployments``: Replicate's deployment endpoints, plus pre-warming.

List, create, get, update (``PATCH``, a new release each time) and delete deployments; create a
prediction on one (``POST /v1/deployments/{owner}/{name}/predictions``, the same create-and-wait
path as every other create, billed to the caller's account). Deployments are visible to the
owner account's members and changed or used by those who may write to it; everyone else gets
404. ``POST /v1/deployments/{owner}/{name}/prewarm`` and ``POST /v1/models/{owner}/{name}/prewarm``
start instances ahead of traffic.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from marketplace.accounts.models import signed_in
from marketplace.api import openapi as o
from marketplace.api.authentication import acting_account
from marketplace.api.errors import Problem
from marketplace.api.pagination import CursorPage
from marketplace.api.throttles import ApiRateThrottle, CreateRateThrottle
from marketplace.catalog.models import Model, Version
from marketplace.deployments import config
from marketplace.deployments.models import Deployment
from marketplace.predictions.api import _create, _create_and_wait, parse_prefer_wait
from marketplace.predictions.serializers import ModelPredictionCreateInput
from workers import queues

NOT_FOUND = "The requested resource could not be found."


class DeploymentOut(serializers.Serializer):
    owner = serializers.CharField()
    name = serializers.CharField()
    current_release = serializers.JSONField(
        help_text="number, model, version, created_at, created_by, configuration "
        "{hardware, min_instances, max_instances}"
    )


DeploymentPage = o.page_of(DeploymentOut, "DeploymentPage")
DeploymentCreate = inline_serializer(
    "DeploymentCreate",
    {
        "name": serializers.CharField(),
        "model": serializers.CharField(help_text="owner/name"),
        "version": serializers.CharField(),
        "hardware": serializers.CharField(),
        "min_instances": serializers.IntegerField(),
        "max_instances": serializers.IntegerField(),
        "idle_timeout": serializers.IntegerField(required=False, help_text="seconds (ours)"),
    },
)
DeploymentUpdate = inline_serializer(
    "DeploymentUpdate",
    {
        "version": serializers.CharField(required=False),
        "hardware": serializers.CharField(required=False),
        "min_instances": serializers.IntegerField(required=False),
        "max_instances": serializers.IntegerField(required=False),
        "idle_timeout": serializers.IntegerField(required=False),
    },
)
Prewarm = inline_serializer("Prewarm", {"instances": serializers.IntegerField(required=False)})
PrewarmOut = inline_serializer(
    "PrewarmResult",
    {"requested": serializers.IntegerField(), "instances": serializers.IntegerField()},
)


def _invalid(exc: config.DeploymentInvalid) -> Problem:
    fields = [{"type": "invalid", "field": f, "description": m} for f, m in exc.errors.items()]
    return Problem(
        422,
        "".join(f"- {f}: {m}\n" for f, m in exc.errors.items()),
        "Invalid deployment",
        invalid_fields=fields,
    )


def _body(request: Request) -> dict[str, Any]:
    if not isinstance(request.data, dict):
        raise Problem(400, "The body must be a JSON object", "Invalid request")
    return dict(request.data)


def _deployment(request: Request, owner: str, name: str, *, write: bool = False) -> Deployment:
    """The deployment if the caller may see it (404 otherwise); ``write``: a read-only member
    learns why they cannot change it (403), as everywhere in the API."""
    user = signed_in(request.user)
    deployment = config.deployment_for(user, owner, name)
    if deployment is None:
        raise Problem(404, NOT_FOUND)
    if write and not deployment.owner.can_write(user):
        raise Problem(
            403,
            f"Your role in {deployment.owner.username} is read-only: you cannot change or run "
            "its deployments",
            "Forbidden",
        )
    return deployment


def _instances_wanted(request: Request, default: int) -> int:
    raw = _body(request).get("instances", default)
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
        raise Problem(
            422,
            "- instances: must be a positive integer\n",
            "Invalid request",
            invalid_fields=[
                {"type": "invalid", "field": "instances", "description": "must be >= 1"}
            ],
        )
    return raw


class DeploymentCollectionApi(APIView):
    def get_throttles(self) -> list[BaseThrottle]:
        return [CreateRateThrottle() if self.request.method == "POST" else ApiRateThrottle()]

    @extend_schema(operation_id="deployments.list", responses=DeploymentPage, parameters=[o.CURSOR])
    def get(self, request: Request) -> Response:
        deployments = config.visible_deployments(signed_in(request.user))
        paginator: CursorPage = CursorPage()
        page = paginator.paginate_queryset(deployments, request, view=self) or []
        return paginator.get_paginated_response([config.to_api(d) for d in page])

    @extend_schema(
        operation_id="deployments.create", request=DeploymentCreate, responses={201: DeploymentOut}
    )
    def post(self, request: Request) -> Response:
        user = signed_in(request.user)
        owner = acting_account(request, write=True)
        try:
            deployment = config.deployment_create(user=user, owner=owner, data=_body(request))
        except config.DeploymentInvalid as exc:
            raise _invalid(exc) from exc
        return Response(config.to_api(deployment), status=201)


class DeploymentDetailApi(APIView):
    @extend_schema(operation_id="deployments.get", responses=DeploymentOut)
    def get(self, request: Request, owner: str, name: str) -> Response:
        return Response(config.to_api(_deployment(request, owner, name)))

    @extend_schema(
        operation_id="deployments.update", request=DeploymentUpdate, responses=DeploymentOut
    )
    def patch(self, request: Request, owner: str, name: str) -> Response:
        deployment = _deployment(request, owner, name, write=True)
        try:
            updated = config.deployment_update(
                user=signed_in(request.user), deployment=deployment, data=_body(request)
            )
        except config.DeploymentInvalid as exc:
            raise _invalid(exc) from exc
        return Response(config.to_api(updated))

    @extend_schema(operation_id="deployments.delete", responses={204: OpenApiResponse()})
    def delete(self, request: Request, owner: str, name: str) -> Response:
        deployment = _deployment(request, owner, name, write=True)
        config.deployment_delete(user=signed_in(request.user), deployment=deployment)
        return Response(status=204)


class DeploymentPredictionCreateApi(APIView):
    """``POST /v1/deployments/{owner}/{name}/predictions``: run the deployment's release."""

    throttle_classes = [CreateRateThrottle]

    @extend_schema(
        operation_id="deployments.predictions.create",
        request=ModelPredictionCreateInput,
        responses={201: o.PredictionOut},
        parameters=[o.PREFER, o.CANCEL_AFTER],
    )
    def post(self, request: Request, owner: str, name: str) -> Response:
        parse_prefer_wait(request.headers.get("Prefer"))
        deployment = _deployment(request, owner, name, write=True)
        try:
            config.check_online(deployment)
        except config.DeploymentOffline as exc:
            raise Problem(409, str(exc), "Deployment is offline") from exc
        body = ModelPredictionCreateInput(data=request.data)
        body.is_valid(raise_exception=True)
        version = (
            Version.objects.select_related("model__owner", "model__default_hardware")
            .defer("openapi_schema")
            .get(pk=deployment.version_id)
        )
        return _create(request, version, body.validated_data, deployment=deployment)


class DeploymentPrewarmApi(APIView):
    throttle_classes = [CreateRateThrottle]

    @extend_schema(operation_id="deployments.prewarm", request=Prewarm, responses={202: PrewarmOut})
    def post(self, request: Request, owner: str, name: str) -> Response:
        deployment = _deployment(request, owner, name, write=True)
        wanted = _instances_wanted(request, max(1, deployment.min_instances))
        result = config.prewarm(
            pool=queues.deployment_pool(deployment.pk),
            version=deployment.version,
            sku=deployment.hardware.sku,
            wanted=wanted,
            ceiling=deployment.max_instances,
        )
        return Response(result, status=202)


class ModelPrewarmApi(APIView):
    """Warm a model's shared instances (its latest version): for those who may change it."""

    throttle_classes = [CreateRateThrottle]

    @extend_schema(operation_id="models.prewarm", request=Prewarm, responses={202: PrewarmOut})
    def post(self, request: Request, owner: str, name: str) -> Response:
        from django.conf import settings

        user = signed_in(request.user)
        model = (
            Model.objects.visible_to(user)
            .filter(owner__username__iexact=owner, name=name)
            .select_related("owner", "default_hardware")
            .first()
        )
        if model is None:
            raise Problem(404, NOT_FOUND)
        if not model.owner.can_write(user):
            raise Problem(403, "Only the model's owners can pre-warm it", "Forbidden")
        version = model.versions.filter(hidden=False).order_by("-created_at").first()
        if version is None:
            raise Problem(422, "This model has no version to run yet", "Model has no versions")
        wanted = _instances_wanted(request, 1)
        result = config.prewarm(
            pool=queues.version_pool(version.pk),
            version=version,
            sku=model.default_hardware.sku,
            wanted=wanted,
            ceiling=settings.VERSION_MAX_INSTANCES,
        )
        return Response(result, status=202)


_prediction_view = DeploymentPredictionCreateApi.as_view()


@csrf_exempt
async def deployment_predictions_create(
    request: HttpRequest, owner: str, name: str
) -> HttpResponse:
    return await _create_and_wait(_prediction_view, request, owner=owner, name=name)


_wrapper: Any = deployment_predictions_create
_wrapper.cls = DeploymentPredictionCreateApi
_wrapper.initkwargs = {}
