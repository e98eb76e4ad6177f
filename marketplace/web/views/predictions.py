"""The prediction page (permalink), its live event stream, cancel and "feature as example"."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from marketplace.accounts.models import AnyUser
from marketplace.catalog import formspec
from marketplace.catalog.models import Version
from marketplace.deployments.transparency import describe, queue_info, with_queue
from marketplace.files.access import has_refs, sign_output
from marketplace.predictions import events
from marketplace.predictions.models import Prediction
from marketplace.predictions.services import prediction_cancel
from marketplace.predictions.webhooks import WebhookDelivery, redeliver
from marketplace.web import playground
from marketplace.web.access import prediction_for
from marketplace.web.rendering import render_output

# Redis stream entry ids, as browsers send them back in Last-Event-ID.
EVENT_ID_RE = re.compile(r"^[0-9]{1,20}-[0-9]{1,20}\Z")
# How long one SSE response lives; the browser reconnects with Last-Event-ID afterwards.
STREAM_SECONDS = 300
# Block at most this long per read, so queue positions refresh and dead clients are noticed.
POLL_MS = 1000


# Where an account sends its webhooks is its own business, even on a featured example.
PRIVATE_KEYS = ("webhook", "webhook_events_filter")


def state(prediction: Prediction, viewer: AnyUser) -> dict[str, Any]:
    """The prediction as the page's script redraws it."""
    data = prediction.to_api()
    if not prediction.account.is_member(viewer):
        for key in PRIVATE_KEYS:
            data.pop(key, None)
    if prediction.is_training:
        data["trained_version"] = trained_version_link(prediction, viewer)
    return with_queue(data, prediction)


def trained_version_link(training: Prediction, viewer: AnyUser) -> dict[str, str] | None:
    """The version a succeeded training made, as the training page links it: its name, and its
    page when the viewer may see its model."""
    version = (
        Version.objects.filter(training=training)
        .select_related("model__owner")
        .only("id", "model__name", "model__visibility", "model__owner__username")
        .first()
    )
    if version is None:
        return None
    model = version.model
    link = {
        "name": f"{model.full_name}:{version.pk}",
        "short": f"{model.full_name}:{version.pk[:12]}",
    }
    if model.is_visible_to(viewer):
        link["url"] = reverse("model", args=[model.owner.username, model.name]) + (
            f"?version={version.pk}"
        )
        link["versions_url"] = (
            reverse("model-versions", args=[model.owner.username, model.name])
            + f"#v-{version.pk[:12]}"
        )
    return link


def prediction_page(request: HttpRequest, prediction_id: str) -> HttpResponse:
    prediction = prediction_for(request.user, prediction_id)
    version = prediction.version
    # A training's input and output are its trainer's: TrainingInput/TrainingOutput.
    schema = version.train_schema if prediction.is_training else version.schema
    spec = formspec.output_spec(schema)
    fields = formspec.input_fields(schema)
    model = prediction.model
    is_mine = prediction.account.is_member(request.user)
    # The input and output as the API shows them: the prediction's own files signed, nothing else.
    page_state = state(prediction, request.user)
    shown = page_state["input"] if isinstance(page_state["input"], dict) else {}
    shown_input = [(b.f, b) for b in playground.bind(fields, shown) if b.f.name in shown]
    context = {
        "prediction": prediction,
        "model": model,
        "inputs": shown_input,
        "secret_names": {f.name for f in fields if f.secret},
        "output_html": render_output(page_state["output"], spec),
        "spec_json": spec.as_dict(),
        "state_json": page_state,
        "queue_text": describe(page_state.get("queue")),
        "is_mine": is_mine,
        # The webhook delivery log is the account's business only (it shows their URLs).
        "deliveries": list(prediction.webhook_deliveries.prefetch_related("attempts"))
        if is_mine
        else [],
        "can_write": prediction.account.can_write(request.user),
        "can_feature": not prediction.is_training
        and model.is_owned_by(request.user)
        and prediction.account.can_write(request.user)
        and prediction.status == Prediction.Status.SUCCEEDED,
        "hardware": prediction.hardware,
        "is_training": prediction.is_training,
        "destination": prediction.destination if prediction.is_training else None,
        "trained_version": page_state.get("trained_version"),
    }
    return render(request, "web/prediction.html", context)


def prediction_json(request: HttpRequest, prediction_id: str) -> JsonResponse:
    return JsonResponse(state(prediction_for(request.user, prediction_id), request.user))


def _sse(event_id: str | None, event: str, data: dict[str, Any]) -> bytes:
    return events.sse(event, json.dumps(data, separators=(",", ":")), event_id).encode()


async def prediction_events(request: HttpRequest, prediction_id: str) -> StreamingHttpResponse:
    """Server-sent events of a prediction for its page, replayed from ``Last-Event-ID``."""
    user = await request.auser()
    prediction = await sync_to_async(prediction_for)(user, prediction_id)
    after = request.headers.get("Last-Event-ID") or "0"
    if not EVENT_ID_RE.match(after):
        after = "0"

    async def stream() -> AsyncIterator[bytes]:
        nonlocal after
        loop = asyncio.get_running_loop()
        until = loop.time() + STREAM_SECONDS
        yield b"retry: 1000\n\n"
        seen_processing = prediction.status != Prediction.Status.STARTING
        # A finished prediction's stream holds all it will ever hold: don't wait on it (it may
        # also have expired, and then the database has the final word).
        block_ms = None if prediction.is_terminal else POLL_MS
        while loop.time() < until:
            batch = await events.aread(prediction_id, after, block_ms=block_ms)
            for event in batch:
                after = event.id
                seen_processing = seen_processing or event.type != events.STATUS
                data = event.data
                if event.type == events.OUTPUT and has_refs(data):
                    data = await sync_to_async(sign_output)(prediction, data)
                elif event.type == events.DONE:
                    # What the done event carries for Prefer: wait is not the page's business.
                    data = {"status": data.get("status"), "error": data.get("error")}
                yield _sse(event.id, event.type, data)
                if event.type == events.DONE:
                    return
            if not batch:
                current = await sync_to_async(_reload)(prediction_id)
                if current.is_terminal:
                    yield _sse(None, events.DONE, {"status": current.status})
                    return
                if not seen_processing:
                    info = await sync_to_async(queue_info)(current)
                    yield _sse(None, "queue", info or {})
                else:
                    yield b": keep-alive\n\n"

    response = StreamingHttpResponse(stream(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


def _reload(prediction_id: str) -> Prediction:
    return (
        Prediction.objects.select_related("version")
        .only("id", "status", "version_id", "deployment_id", "version__cog_config")
        .get(pk=prediction_id)
    )


def _writable(user: AnyUser, prediction_id: str) -> Prediction:
    """A prediction the user may act on: 404 to outsiders, 403 to read-only members."""
    prediction = prediction_for(user, prediction_id)
    if not prediction.account.is_member(user):
        raise Http404("No such prediction")
    if not prediction.account.can_write(user):
        raise PermissionDenied(f"Your role in {prediction.account.username} is read-only")
    return prediction


@login_required
@require_POST
def cancel(request: HttpRequest, prediction_id: str) -> HttpResponse:
    prediction = _writable(request.user, prediction_id)
    if not prediction.is_terminal:
        prediction_cancel(prediction)
    return redirect("prediction", prediction_id=prediction.pk)


@login_required
@require_POST
def feature(request: HttpRequest, prediction_id: str) -> HttpResponse:
    """The model's owner features (or unfeatures) one of their own predictions as an example."""
    prediction = prediction_for(request.user, prediction_id)
    if not (
        prediction.model.is_owned_by(request.user) and prediction.account.can_write(request.user)
    ):
        raise Http404("No such prediction")
    featured = request.POST.get("featured") == "1"
    if featured and prediction.status != Prediction.Status.SUCCEEDED:
        raise Http404("Only succeeded predictions can be examples")
    Prediction.objects.filter(pk=prediction.pk).update(is_example=featured)
    return redirect("prediction", prediction_id=prediction.pk)


@login_required
@require_POST
def redeliver_webhook(request: HttpRequest, prediction_id: str, message_id: str) -> HttpResponse:
    """Send a delivered or failed webhook once more (same webhook-id), like the API's redeliver."""
    prediction = _writable(request.user, prediction_id)
    delivery = WebhookDelivery.objects.filter(prediction=prediction, message_id=message_id).first()
    if delivery is None:
        raise Http404("No such webhook delivery")
    # A pending delivery is already on its way (or waiting for its next retry).
    if delivery.status != WebhookDelivery.Status.PENDING:
        redeliver(delivery)
    return redirect(reverse("prediction", args=[prediction.pk]) + "#webhooks")
