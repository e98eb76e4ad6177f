"""``/v1/trainings`` and ``/v1/models/{owner}/{name}/versions/{id}/trainings``: create, list, get
and cancel trainings. A training is a prediction of kind ``training``
(``predictions.trainings``); these views parse and render, the one create path decides."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from marketplace.accounts.models import ApiToken, User, signed_in
from marketplace.api import openapi as o
from marketplace.api.authentication import acting_account
from marketplace.api.errors import Problem
from marketplace.api.pagination import CursorPage
from marketplace.api.throttles import CreateRateThrottle
from marketplace.catalog.models import Model, Version
from marketplace.files.access import prime
from marketplace.predictions.models import Prediction
from marketplace.predictions.serializers import WEBHOOK_EVENTS
from marketplace.predictions.services import prediction_cancel, prediction_create
from marketplace.predictions.waiting import api_body, created

NOT_FOUND = "The requested resource could not be found."


class TrainingCreateInput(serializers.Serializer):
    """Body of ``POST …/versions/{id}/trainings``. ``destination`` is checked by the create path
    (its problems name the field); the legacy ``webhook_completed`` the Python client may send
    is ignored."""

    destination = serializers.CharField(max_length=300)
    input = serializers.JSONField()
    webhook = serializers.URLField(required=False, allow_blank=True, max_length=2000)
    webhook_events_filter = serializers.ListField(
        child=serializers.ChoiceField(choices=WEBHOOK_EVENTS), required=False, allow_empty=True
    )


def _trainings_of(user: User) -> Any:
    """The trainings of the account the caller's token acts for (any member's)."""
    return (
        Prediction.objects.select_related(
            "model__owner", "version", "hardware", "instance", "destination__owner"
        )
        .defer("version__openapi_schema")
        .filter(account=user.account, kind=Prediction.Kind.TRAINING)
    )


def training_of_caller(request: Request, training_id: str) -> Prediction:
    """The training if the caller's account owns it; 404 for everyone else."""
    training = _trainings_of(signed_in(request.user)).filter(pk=training_id).first()
    if training is None:
        raise Problem(404, NOT_FOUND)
    return training


class TrainingCreateApi(APIView):
    throttle_classes = [CreateRateThrottle]

    @extend_schema(
        operation_id="trainings.create",
        request=TrainingCreateInput,
        responses={201: o.TrainingOut},
    )
    def post(self, request: Request, owner: str, name: str, version_id: str) -> Response:
        user = signed_in(request.user)
        model = Model.objects.visible_to(user).named(owner, name)
        version = (
            Version.objects.select_related("model__owner", "model__default_hardware")
            .filter(model=model, pk=version_id)
            .first()
            if model is not None
            else None
        )
        if version is None:
            raise Problem(404, NOT_FOUND)
        account = acting_account(request, write=True)  # read-only tokens and members: 403
        body = TrainingCreateInput(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        training = prediction_create(
            version=version,
            input=data["input"],
            account=account,
            created_by=user,
            created_by_token=request.auth if isinstance(request.auth, ApiToken) else None,
            webhook=data.get("webhook") or "",
            webhook_events_filter=data.get("webhook_events_filter"),
            destination=data["destination"],
        )
        return created(training)


class TrainingCollectionApi(APIView):
    @extend_schema(operation_id="trainings.list", responses=o.TrainingPage, parameters=[o.CURSOR])
    def get(self, request: Request) -> Response:
        paginator: CursorPage = CursorPage()
        page: list[Prediction] | None = paginator.paginate_queryset(
            _trainings_of(signed_in(request.user)), request, view=self
        )
        prime(page or [])
        return paginator.get_paginated_response([api_body(t) for t in page or []])


class TrainingDetailApi(APIView):
    @extend_schema(operation_id="trainings.get", responses=o.TrainingOut)
    def get(self, request: Request, training_id: str) -> Response:
        return Response(api_body(training_of_caller(request, training_id)))


class TrainingCancelApi(APIView):
    @extend_schema(operation_id="trainings.cancel", request=None, responses=o.TrainingOut)
    def post(self, request: Request, training_id: str) -> Response:
        training = training_of_caller(request, training_id)
        acting_account(request, write=True)
        return Response(prediction_cancel(training).to_api())
