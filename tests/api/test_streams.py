"""/v1/streams/<token>: SSE served by the live ASGI server from a prediction's event stream.

The events are written with ``events.publish`` exactly as a runner writes them; what is under
test is the endpoint: framing, ids, event names, replay from Last-Event-ID, no auth needed.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from marketplace.predictions import events
from marketplace.predictions.models import Prediction
from marketplace.predictions.services import Outcome, prediction_claim, prediction_finish
from tests.factories import publish

pytestmark = pytest.mark.django_db(transaction=True)


def parse(text: str) -> list[dict[str, str]]:
    out = []
    for block in text.strip().split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if line.startswith(":"):
                continue
            key, _, value = line.partition(": ")
            fields[key] = f"{fields[key]}\n{value}" if key in fields else value
        if fields:
            out.append(fields)
    return out


@pytest.fixture
def running(user: Any) -> Prediction:
    version = publish(user, "text-stream")
    prediction = Prediction.objects.create(
        model=version.model,
        version=version,
        account=user.account,
        hardware=version.model.default_hardware,
    )
    prediction_claim(prediction.id, instance_id=None)  # type: ignore[arg-type]
    return prediction


def test_stream_sends_only_client_events_with_ids_and_replays(
    start_web: Any, running: Prediction
) -> None:
    web = start_web()
    pid = running.id
    events.publish(pid, events.LOGS, {"text": "loading\n"})
    events.publish(pid, events.OUTPUT, {"index": 0, "chunk": "Once upon"})
    events.publish(pid, events.OUTPUT, {"index": 1, "chunk": "a\ntime"})
    prediction_finish(pid, Outcome("succeeded", output=["Once upon", "a\ntime"]))
    url = f"{web.url}/v1/streams/{running.stream_token}"
    response = httpx.get(url, headers={"Accept": "text/event-stream"}, timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-store"
    got = parse(response.text)
    assert [e["event"] for e in got] == ["logs", "output", "output", "done"]
    assert all(e["id"] for e in got) and got[2]["data"] == "a\ntime" and got[3]["data"] == "{}"
    # Reconnecting after the first output replays only what came after it.
    again = httpx.get(url, headers={"Last-Event-ID": got[1]["id"]}, timeout=10)
    assert [e["id"] for e in parse(again.text)] == [got[2]["id"], got[3]["id"]]
    assert httpx.get(f"{web.url}/v1/streams/nope", timeout=10).status_code == 404


def test_failed_prediction_streams_error_then_done(start_web: Any, running: Prediction) -> None:
    web = start_web()
    prediction_finish(running.id, Outcome("failed", error="boom"))
    url = f"{web.url}/v1/streams/{running.stream_token}"
    got = parse(httpx.get(url, timeout=10).text)
    assert [(e["event"], e["data"]) for e in got] == [
        ("error", '{"detail": "boom"}'),
        ("done", '{"reason": "error"}'),
    ]
    # After the error event only its done remains.
    rest = parse(httpx.get(url, headers={"Last-Event-ID": got[0]["id"]}, timeout=10).text)
    assert [e["event"] for e in rest] == ["done"]


def test_finished_prediction_whose_events_expired_streams_from_the_database(
    start_web: Any, running: Prediction
) -> None:
    web = start_web()
    prediction_finish(running.id, Outcome("succeeded", output=["a", "b"]))
    from marketplace.redisconn import get_redis

    get_redis().delete(events.stream_key(running.id))
    got = parse(httpx.get(f"{web.url}/v1/streams/{running.stream_token}", timeout=10).text)
    assert [(e["event"], e["data"]) for e in got] == [
        ("output", "a"),
        ("output", "b"),
        ("done", "{}"),
    ]


def test_idle_stream_sends_keepalive_comments_then_live_events(
    start_web: Any, running: Prediction
) -> None:
    web = start_web(STREAM_KEEPALIVE_SECONDS="0.1")
    url = f"{web.url}/v1/streams/{running.stream_token}"
    with httpx.stream("GET", url, timeout=10) as response:
        lines = response.iter_lines()
        assert next(lines) == ": keepalive"
        events.publish(running.id, events.OUTPUT, {"index": 0, "chunk": "live"})
        seen = []
        for line in lines:
            seen.append(line)
            if line == "data: live":
                break
        assert "event: output" in seen
