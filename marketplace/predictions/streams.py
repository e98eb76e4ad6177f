"""``GET /v1/streams/<stream_token>``: a prediction's events as Server-Sent Events.

The URL is a capability (the JS client and browsers send no credentials). Every event carries an
``id:`` (Python's decoder drops events without one) that is its position in the prediction's
Redis stream, so a reconnect with ``Last-Event-ID`` resumes where it left off. Only the four event
names the clients accept are sent: ``output``, ``logs``, ``error`` and ``done``; keep-alives are
comment lines. While the prediction waits, its queue state goes out as a comment every second,
``: queue {"position": 3, "estimated_start_at": …, "phase": "queued"}``: the official Python
client refuses unknown event names, and every SSE parser ignores comments.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt

from marketplace.files.access import has_refs, sign_output
from marketplace.predictions import events
from marketplace.predictions.models import Prediction

# An error event and the done after it come from one Redis entry; the error's id gets this suffix.
ERROR_SUFFIX = "-e"
# How often a waiting prediction's queue state is sent (as a comment).
QUEUE_REFRESH_MS = 1000


def _chunk_text(chunk: Any) -> str:
    return chunk if isinstance(chunk, str) else json.dumps(chunk)


def _before(entry_id: str) -> str:
    """The Redis stream id just before ``entry_id`` (XREAD reads strictly after its argument)."""
    ms, _, seq = entry_id.partition("-")
    if seq and int(seq) > 0:
        return f"{ms}-{int(seq) - 1}"
    return f"{int(ms) - 1}-18446744073709551615" if int(ms) > 0 else "0"


def _done_events(entry_id: str, data: dict[str, Any], skip_error: bool) -> list[str]:
    status, error = data.get("status"), data.get("error")
    out = []
    if status == Prediction.Status.FAILED:
        if not skip_error:
            detail = json.dumps({"detail": error or "Prediction failed"})
            out.append(events.sse("error", event_id=entry_id + ERROR_SUFFIX, data=detail))
        out.append(events.sse("done", event_id=entry_id, data=json.dumps({"reason": "error"})))
    elif status == Prediction.Status.CANCELED:
        out.append(events.sse("done", event_id=entry_id, data=json.dumps({"reason": "canceled"})))
    else:
        out.append(events.sse("done", event_id=entry_id, data="{}"))
    return out


def _from_database(prediction: Prediction) -> list[str]:
    """For a finished prediction whose event stream has expired: its output, then done."""
    stamp = f"{int(prediction.completed_at.timestamp() * 1000) if prediction.completed_at else 0}"
    out = []
    if prediction.status == Prediction.Status.SUCCEEDED and prediction.output is not None:
        items = prediction.output if isinstance(prediction.output, list) else [prediction.output]
        out = [
            events.sse(
                "output", event_id=f"{stamp}-{i}", data=_chunk_text(sign_output(prediction, c))
            )
            for i, c in enumerate(items)
        ]
    done = {"status": prediction.status, "error": prediction.error}
    return out + _done_events(f"{stamp}-{len(out)}", done, skip_error=False)


async def _events(prediction: Prediction, last_event_id: str) -> AsyncIterator[str]:
    after, skip_error = "0", False
    if last_event_id:
        skip_error = last_event_id.endswith(ERROR_SUFFIX)
        base = last_event_id.removesuffix(ERROR_SUFFIX)
        if base.replace("-", "").isdigit() and base.count("-") == 1:
            # After an error event, resume at its entry so that the done is still sent.
            after = _before(base) if skip_error else base
    if after == "0" and prediction.is_terminal:
        pending = await events.aread(prediction.pk, "0", count=1)
        if not pending:
            for item in await sync_to_async(_from_database)(prediction):
                yield item
            return
    give_up = time.monotonic() + settings.PREDICTION_TIMEOUT + 600
    waiting = prediction.status == Prediction.Status.STARTING
    keepalive_ms = int(settings.STREAM_KEEPALIVE_SECONDS * 1000)
    while time.monotonic() < give_up:
        if waiting:
            comment = await sync_to_async(_queue_comment)(prediction.pk)
            waiting = comment is not None
            if comment:
                yield comment
        block_ms = min(QUEUE_REFRESH_MS, keepalive_ms) if waiting else keepalive_ms
        batch = await events.aread(prediction.pk, after, block_ms=block_ms)
        if not batch:
            if not waiting:
                yield ": keepalive\n\n"
            continue
        for event in batch:
            after = event.id
            if event.type == events.STATUS:
                waiting = False
            if event.type == events.OUTPUT:
                chunk = event.data.get("chunk")
                if has_refs(chunk):
                    chunk = await sync_to_async(sign_output)(prediction, chunk)
                yield events.sse("output", event_id=event.id, data=_chunk_text(chunk))
            elif event.type == events.LOGS:
                yield events.sse("logs", event_id=event.id, data=str(event.data.get("text", "")))
            elif event.type == events.DONE:
                for item in _done_events(event.id, event.data, skip_error):
                    yield item
                return
            skip_error = False


def _queue_comment(prediction_id: str) -> str | None:
    """The waiting prediction's queue state as an SSE comment; None once it left the queue."""
    from marketplace.deployments.transparency import queue_info

    prediction = (
        Prediction.objects.select_related("version")
        .only("id", "status", "version_id", "deployment_id", "version__cog_config")
        .filter(pk=prediction_id)
        .first()
    )
    info = queue_info(prediction) if prediction is not None else None
    if info is None or info["phase"] == "running":
        return None
    return f": queue {json.dumps(info, separators=(',', ':'))}\n\n"


def _find(token: str) -> Prediction | None:
    return (
        Prediction.objects.filter(stream_token=token)
        .only("id", "status", "output", "error", "completed_at")
        .first()
    )


@csrf_exempt
async def stream(request: HttpRequest, stream_token: str) -> HttpResponseBase:
    response: HttpResponseBase
    if request.method == "OPTIONS":
        response = HttpResponse(status=204)
    else:
        prediction = await sync_to_async(_find)(stream_token)
        if prediction is None:
            response = HttpResponse(
                json.dumps({"title": "Not found", "detail": "No such stream", "status": 404}),
                status=404,
                content_type="application/problem+json",
            )
        else:
            last = request.headers.get("Last-Event-ID", "") or request.GET.get("lastEventId", "")
            response = StreamingHttpResponse(
                _events(prediction, last.strip()), content_type="text/event-stream"
            )
            response["Cache-Control"] = "no-store"
            response["X-Accel-Buffering"] = "no"
    # Browsers use EventSource (withCredentials); the URL itself is the only credential.
    origin = request.headers.get("Origin")
    response["Access-Control-Allow-Origin"] = origin or "*"
    if origin:
        response["Access-Control-Allow-Credentials"] = "true"
        response["Vary"] = "Origin"
    response["Access-Control-Allow-Headers"] = "Authorization, Last-Event-ID, Cache-Control, Accept"
    response["Access-Control-Allow-Methods"] = "GET, OPTIONS"
    return response
