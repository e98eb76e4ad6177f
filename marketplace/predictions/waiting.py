"""The API's answer to a create: the prediction object (with its ``queue`` extension), and
``Prefer: wait[=N]``, which holds the request on the event loop until the prediction ends or the
window closes. Shared by every create endpoint (``/v1/predictions``, model and deployment
predictions); views call these, they hold no rule of their own."""

from __future__ import annotations

import re
from typing import Any

import redis
from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, JsonResponse
from rest_framework.response import Response

from marketplace.api.errors import Problem
from marketplace.deployments.transparency import with_queue
from marketplace.predictions import events
from marketplace.predictions.models import Prediction

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


def api_body(prediction: Prediction) -> dict[str, Any]:
    """The prediction object of the API, with ``queue`` while it is active."""
    return with_queue(prediction.to_api(), prediction)


def created(prediction: Prediction) -> Response:
    body = api_body(prediction)
    return Response(body, status=201, headers={"Location": body["urls"]["get"]})


def _load(prediction_id: str) -> dict[str, Any]:
    prediction = (
        Prediction.objects.select_related("model__owner", "version", "hardware", "instance")
        .defer("version__openapi_schema")
        .get(pk=prediction_id)
    )
    return api_body(prediction)


async def create_and_wait(view: Any, request: HttpRequest, **kwargs: Any) -> HttpResponse:
    """Run a (sync DRF) create view, then hold the request for ``Prefer: wait``."""
    response = await sync_to_async(view)(request, **kwargs)
    if request.method != "POST" or response.status_code != 201:
        return response
    wait = parse_prefer_wait(request.headers.get("Prefer"))
    if wait is None:
        return response
    seconds, applied = wait
    prediction_id = response.data["id"]
    try:
        done = await events.await_done(prediction_id, seconds)
    except redis.RedisError:
        # Created and queued, then Redis went away: the prediction stands (the reconciler and
        # its runner carry on once Redis is back); answer with it as it is, without the wait.
        done = None
    # The finished prediction travels in the done event (services._announce_done) when small.
    body = done.data.get("prediction") if done is not None else None
    if body is None:
        body = await sync_to_async(_load)(prediction_id)
    if done is None and body["status"] not in Prediction.TERMINAL:
        # The clients treat anything but "starting" as final and stop polling (rule 8).
        body["status"] = Prediction.Status.STARTING
    out = JsonResponse(body, status=201)
    out["Location"] = body["urls"]["get"]
    out["Preference-Applied"] = applied
    return out
