"""The prediction page's event stream, served by the real ASGI server: session-authenticated,
404 to outsiders, replaying from Last-Event-ID."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from django.test import Client

from marketplace.predictions import events
from marketplace.predictions.services import Outcome, prediction_create, prediction_finish
from marketplace.scheduling import placement
from tests.factories import publish

pytestmark = pytest.mark.slow


def session_cookie(user: Any) -> dict[str, str]:
    client = Client()
    client.force_login(user)
    return {"sessionid": client.cookies["sessionid"].value}


def read_events(
    url: str, cookies: dict[str, str], last_id: str | None = None
) -> list[tuple[str, str, str]]:
    headers = {"Last-Event-ID": last_id} if last_id else {}
    out: list[tuple[str, str, str]] = []
    with httpx.stream("GET", url, cookies=cookies, headers=headers, timeout=20) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        event: dict[str, str] = {}
        for line in response.iter_lines():
            if line.startswith(("id:", "event:", "data:")):
                key, _, value = line.partition(":")
                event[key] = value.strip()
            elif line == "" and "event" in event:
                out.append((event.get("id", ""), event["event"], event["data"]))
                if event["event"] == "done":
                    break
                event = {}
    return out


def test_event_stream_replays_from_last_event_id_and_hides_from_outsiders(
    start_web: Any, user: Any, outsider: Any
) -> None:
    version = publish(user, "hello", "hello")
    web = start_web()
    prediction = prediction_create(
        version=version, input={"text": "x"}, account=user.account, created_by=user
    )
    url = f"{web.url}/p/{prediction.pk}/events"
    events.publish(prediction.pk, events.STATUS, {"status": "processing"})
    events.publish(prediction.pk, events.LOGS, {"text": "one\n"})
    events.publish(prediction.pk, events.LOGS, {"text": "two\n"})
    prediction_finish(prediction.pk, Outcome("succeeded", output="hello x"))

    assert httpx.get(url, cookies=session_cookie(outsider)).status_code == 404
    assert httpx.get(url).status_code == 404

    everything = read_events(url, session_cookie(user))
    assert [e[1] for e in everything] == ["status", "logs", "logs", "done"]
    after_first_log = everything[1][0]
    rest = read_events(url, session_cookie(user), last_id=after_first_log)
    assert [(e[1], e[2]) for e in rest] == [
        ("logs", '{"text":"two\\n"}'),
        ("done", '{"status":"succeeded","error":null}'),
    ]


def test_a_queued_prediction_reports_its_queue_position(start_web: Any, user: Any) -> None:
    version = publish(user, "hello", "hello")
    web = start_web()
    placement.report_room("elsewhere", {"cpu": 1}, ttl=60)  # a host that could take it
    first = prediction_create(version=version, input={}, account=user.account, created_by=user)
    second = prediction_create(version=version, input={}, account=user.account, created_by=user)
    assert [first.status, second.status] == ["starting", "starting"]
    cookies = session_cookie(user)
    with httpx.stream(
        "GET", f"{web.url}/p/{second.pk}/events", cookies=cookies, timeout=20
    ) as response:
        for line in response.iter_lines():
            if line.startswith("data:") and "position" in line:
                queue = json.loads(line.removeprefix("data: "))
                # Nothing serves the version yet: an instance was asked for.
                assert queue == {
                    "position": 2,
                    "estimated_start_at": None,
                    "phase": "starting_instance",
                }
                break
    page = httpx.get(f"{web.url}/p/{second.pk}", cookies=cookies).text
    assert "position 2 in the queue · starting an instance" in page
