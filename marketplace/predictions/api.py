"""``/v1/predictions``: create (with ``Prefer: wait``), get and cancel."""

from __future__ import annotations

import re
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from marketplace.accounts.models import ApiToken, User
from marketplace.api.errors import Problem
from marketplace.catalog.models import Version
from marketplace.predictions import events
from marketplace.predictions.models import Prediction
from marketplace.predictions.serializers import PredictionCreateInput
from marketplace.predictions.services import (
    InputValidationError,
    PaymentRequired,
    prediction_cancel,
    prediction_create,
)

PREFER_WAIT_RE = re.compile(r"^wait(?:=([0-9]{1,2}))?$")
MAX_WAIT_SECONDS = 60


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


def _user(request: Request) -> User:
    # Every view here requires authentication (DEFAULT_PERMISSION_CLASSES), so this is a User.
    assert isinstance(request.user, User)
    return request.user


def _prediction_for(request: Request, prediction_id: str) -> Prediction:
    """The prediction if the caller's account owns it; 404 for everyone else."""
    prediction = (
        Prediction.objects.select_related("model__owner", "version")
        .defer("version__openapi_schema")
        .filter(pk=prediction_id, account__user=_user(request))
        .first()
    )
    if prediction is None:
        raise Problem(404, "The requested resource could not be found.")
    return prediction


class PredictionCreateApi(APIView):
    def post(self, request: Request) -> Response:
        parse_prefer_wait(request.headers.get("Prefer"))  # reject a malformed header before work
        body = PredictionCreateInput(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        user = _user(request)
        version = Version.objects.visible_to(user).resolve(data["version"])
        if version is None:
            raise Problem(
                422,
                "The specified version does not exist "
                "(or perhaps you don't have permission to use it?)",
                "Invalid version or not permitted",
            )
        try:
            prediction = prediction_create(
                version=version,
                input=data["input"],
                account=user.account,
                created_by=user,
                created_by_token=request.auth if isinstance(request.auth, ApiToken) else None,
                webhook=data.get("webhook", ""),
                webhook_events_filter=data.get("webhook_events_filter"),
            )
        except PaymentRequired as exc:
            raise Problem(402, str(exc)) from exc
        except InputValidationError as exc:
            raise Problem(
                422,
                "".join(f"- {e.field}: {e.description}\n" for e in exc.errors),
                "Input validation failed",
                invalid_fields=[e.as_dict() for e in exc.errors],
            ) from exc
        body_out = prediction.to_api()
        return Response(body_out, status=201, headers={"Location": body_out["urls"]["get"]})


class PredictionDetailApi(APIView):
    def get(self, request: Request, prediction_id: str) -> Response:
        return Response(_prediction_for(request, prediction_id).to_api())


class PredictionCancelApi(APIView):
    def post(self, request: Request, prediction_id: str) -> Response:
        prediction = prediction_cancel(_prediction_for(request, prediction_id))
        return Response(prediction.to_api())


_create_view = PredictionCreateApi.as_view()


def _load_api(prediction_id: str) -> dict[str, Any]:
    prediction = (
        Prediction.objects.select_related("model__owner", "version")
        .defer("version__openapi_schema")
        .get(pk=prediction_id)
    )
    return prediction.to_api()


@csrf_exempt
async def predictions_create(request: HttpRequest) -> HttpResponse:
    """The create view, plus ``Prefer: wait`` held on the event loop instead of a thread."""
    response = await sync_to_async(_create_view)(request)
    if response.status_code != 201:
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
