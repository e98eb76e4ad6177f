"""Queue transparency outside the live stack's timing: the ``queue`` extension on API objects, the
SSE comment on ``/v1/streams``, the prediction page, and the model page's run-time percentiles."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from marketplace.deployments.models import Host, Instance
from marketplace.deployments.transparency import timing_summary
from marketplace.predictions.models import Prediction
from marketplace.predictions.services import Outcome, prediction_claim, prediction_finish
from marketplace.scheduling import instances, placement, pools
from tests.factories import cpu, publish

pytestmark = pytest.mark.django_db(transaction=True)


def create(api: APIClient, version: Any) -> dict[str, Any]:
    response = api.post("/v1/predictions", {"version": version.pk, "input": {}}, format="json")
    assert response.status_code == 201
    return response.json()


def test_waiting_predictions_show_position_phase_and_estimate(api: APIClient, user: Any) -> None:
    version = publish(user, "text-stream")
    first, second = create(api, version), create(api, version)
    # No host for its hardware has room (none runs here): it says so.
    assert second["queue"] == {
        "position": 2,
        "estimated_start_at": None,
        "phase": "waiting_for_capacity",
    }
    # A host reports room: the instance asked for is on its way.
    placement.report_room("somewhere", {"cpu": 1}, ttl=30)
    body = api.get(f"/v1/predictions/{second['id']}").json()
    assert body["queue"]["phase"] == "starting_instance"
    pool = pools.version_pool(version.pk)
    # An instance came up (its setup took 2 s) and runs take about 3 s: the estimate follows.
    instances.register(pool, 7, setup_seconds=2.0)
    pools.pop(pool, 7)  # the first one is now in flight on instance 7
    instances.finished_one(pool, 8, 3.0)  # an earlier instance's run
    body = api.get(f"/v1/predictions/{second['id']}").json()
    assert body["queue"]["phase"] == "queued" and body["queue"]["position"] == 1
    eta = body["queue"]["estimated_start_at"]
    assert eta is not None
    expected = timezone.now() + timedelta(seconds=3)
    assert abs((timezone.datetime.fromisoformat(eta) - expected).total_seconds()) < 2
    listed = {p["id"]: p for p in api.get("/v1/predictions").json()["results"]}
    assert listed[second["id"]]["queue"]["position"] == 1
    prediction_claim(first["id"], instance_id=None)  # type: ignore[arg-type]
    assert api.get(f"/v1/predictions/{first['id']}").json()["queue"] == {
        "position": None,
        "estimated_start_at": None,
        "phase": "running",
    }
    prediction_finish(first["id"], Outcome("succeeded", output=["x"]))
    assert "queue" not in api.get(f"/v1/predictions/{first['id']}").json()


def test_the_client_stream_carries_the_queue_state_as_comments(
    start_web: Any, api: APIClient, user: Any
) -> None:
    version = publish(user, "text-stream")
    web = start_web()
    create(api, version)
    waiting = create(api, version)
    lines: list[str] = []
    with httpx.stream("GET", waiting["urls"]["stream"], timeout=10) as response:
        for line in response.iter_lines():
            lines.append(line)
            if line.startswith(": queue"):
                break
    comment = json.loads(lines[-1].removeprefix(": queue "))
    assert comment["position"] == 2 and comment["phase"] == "waiting_for_capacity"
    assert not any(line.startswith("event:") for line in lines)  # nothing the clients reject
    assert web.url in waiting["urls"]["stream"]


def test_the_model_page_shows_percentiles_of_the_last_day(user: Any) -> None:
    version = publish(user, "hello")
    now = timezone.now()
    rows = []
    for i in range(20):
        created = now - timedelta(minutes=30 + i)
        rows.append(
            Prediction(
                model=version.model,
                version=version,
                account=user.account,
                hardware=cpu(),
                status="succeeded",
                created_at=created,
                started_at=created + timedelta(seconds=i + 1),
                completed_at=created + timedelta(seconds=i + 1 + 2 * (i + 1)),
            )
        )
    old = now - timedelta(days=2)
    rows.append(
        Prediction(
            model=version.model, version=version, account=user.account, hardware=cpu(),
            status="succeeded", created_at=old, started_at=old + timedelta(seconds=999),
            completed_at=old + timedelta(seconds=1999),
        )
    )  # fmt: skip
    Prediction.objects.bulk_create(rows)
    host = Host.objects.create(name="h")
    booted = now - timedelta(hours=1)
    Instance.objects.create(
        host=host, version=version, hardware=cpu(), runtime="local",
        created_at=booted, ready_at=booted + timedelta(seconds=4),
    )  # fmt: skip
    summary = timing_summary(version.model)
    assert summary["queue"] == {"p50": 10.0, "p95": 19.0, "count": 20}
    assert summary["run"] == {"p50": 20.0, "p95": 38.0, "count": 20}
    assert summary["setup"] == {"p50": 4.0, "p95": 4.0, "count": 1}
    client = Client()
    page = client.get("/alice/hello").content.decode()
    assert "Queue wait" in page and "10.0 s" in page and "19.0 s" in page and "38.0 s" in page
