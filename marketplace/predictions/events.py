"""The live event stream of a prediction: a bounded Redis stream per prediction.

Runners append ``status``, ``logs`` (new text), ``output`` (a new item of an iterator output) and a
final ``done``. Readers (``Prefer: wait``, SSE, the prediction page) read with blocking XREADs from
any position, so late subscribers and reconnects replay what they missed. PostgreSQL stays the
source of truth: losing Redis loses live events, never predictions.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from marketplace.jsonsafe import SafeJSONDecoder
from marketplace.redisconn import MAX_BLOCK_MS, get_async_redis, get_redis

STATUS = "status"
LOGS = "logs"
OUTPUT = "output"
DONE = "done"


def stream_key(prediction_id: str) -> str:
    return f"mk:pred:{prediction_id}:events"


@dataclass(frozen=True)
class Event:
    id: str
    type: str
    data: dict[str, Any]


def _decode(entry_id: bytes | str, fields: dict[bytes, bytes]) -> Event:
    eid = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    # Models write logs and outputs: a lone surrogate in them must not break every reader.
    return Event(eid, fields[b"t"].decode(), json.loads(fields[b"d"], cls=SafeJSONDecoder))


def _encode(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"))


def _append(client: Any, prediction_id: str, type_: str, encoded: str) -> None:
    client.xadd(
        stream_key(prediction_id),
        {"t": type_, "d": encoded},
        maxlen=settings.PREDICTION_EVENTS_MAXLEN,
        approximate=True,
    )


def publish(prediction_id: str, type_: str, data: dict[str, Any], *, pipe: Any = None) -> None:
    _append(pipe if pipe is not None else get_redis(), prediction_id, type_, _encode(data))


# The done event carries the finished prediction's API object when it encodes to at most this
# many bytes, so a request waiting on it (``Prefer: wait``) answers without reading the row.
DONE_BODY_MAX_BYTES = 32 * 1024


def publish_done(
    prediction_id: str,
    status: str,
    error: str | None,
    *,
    prediction: dict[str, Any] | None = None,
) -> None:
    """The last event. ``prediction``: the finished prediction's API object (signed); it travels
    when small enough (large logs or outputs: waiters read the row)."""
    data: dict[str, Any] = {"status": status, "error": error}
    encoded = _encode(data)
    if prediction is not None:
        # Its URLs start with this process's PUBLIC_URL: a waiter whose own differs reads the row.
        full = _encode({**data, "prediction": prediction, "public_url": settings.PUBLIC_URL})
        if len(full) <= DONE_BODY_MAX_BYTES:
            encoded = full
    pipe = get_redis().pipeline(transaction=False)
    _append(pipe, prediction_id, DONE, encoded)
    pipe.expire(stream_key(prediction_id), settings.PREDICTION_EVENTS_TTL)
    pipe.execute()


def _block_ms(remaining_seconds: float) -> int:
    return max(1, min(MAX_BLOCK_MS, int(remaining_seconds * 1000)))


def read(
    prediction_id: str, after: str = "0", block_ms: int | None = None, count: int = 500
) -> list[Event]:
    result: Any = get_redis().xread({stream_key(prediction_id): after}, count=count, block=block_ms)
    return [_decode(eid, fields) for _, entries in result or [] for eid, fields in entries]


def follow(prediction_id: str, after: str = "0", timeout: float = 60.0) -> Iterator[Event]:
    """Yield events as they arrive until ``done`` or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        for event in read(prediction_id, after, block_ms=_block_ms(remaining)):
            after = event.id
            yield event
            if event.type == DONE:
                return


async def aread(
    prediction_id: str, after: str = "0", block_ms: int | None = None, count: int = 500
) -> list[Event]:
    result: Any = await get_async_redis().xread(
        {stream_key(prediction_id): after}, count=count, block=block_ms
    )
    return [_decode(eid, fields) for _, entries in result or [] for eid, fields in entries]


async def await_done(prediction_id: str, timeout: float) -> Event | None:
    """Block (without a thread) until the prediction's ``done`` event, or None on timeout."""
    loop_deadline = time.monotonic() + timeout
    after = "0"
    while (remaining := loop_deadline - time.monotonic()) > 0:
        for event in await aread(prediction_id, after, block_ms=_block_ms(remaining)):
            after = event.id
            if event.type == DONE:
                return event
    return None


def _cancel_key(prediction_id: str) -> str:
    return f"mk:pred:{prediction_id}:cancel"


def request_cancel(prediction_id: str) -> None:
    get_redis().set(_cancel_key(prediction_id), "1", ex=settings.PREDICTION_TIMEOUT + 3600)


def cancel_requested(prediction_id: str) -> bool:
    return bool(get_redis().exists(_cancel_key(prediction_id)))


def sse(event: str, data: str, event_id: str | None = None) -> str:
    """One server-sent event; multi-line data becomes one ``data:`` line per line."""
    head = f"event: {event}\n" + (f"id: {event_id}\n" if event_id else "")
    lines = "".join(f"data: {line}\n" for line in (data.split("\n") if data else [""]))
    return f"{head}{lines}\n"
