"""Model swapping on a full host, with real agent processes and real Cog servers: a model nobody
is running makes way for one that waits, least recently used first, never a busy one, never one
a deployment's ``min_instances`` keeps, never one younger than the minimum residency."""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from marketplace.deployments.models import Deployment, Instance
from marketplace.metrics import exposition
from marketplace.predictions.models import Prediction
from tests.conftest import wait_for
from tests.factories import UserFactory, publish
from tests.observability.test_metrics import samples
from tests.workers.test_prediction_path import create, finished

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def run(api: APIClient, version: Any, input: dict[str, Any] | None = None) -> Prediction:
    body = create(api, version.pk, input or {}, wait=None)
    prediction = finished(body["id"], timeout=90)
    assert prediction.status == Prediction.Status.SUCCEEDED, prediction.error
    return prediction


def instance_of(version: Any) -> Instance:
    return Instance.objects.filter(version=version).order_by("-pk").first()  # type: ignore[return-value]


def phases_seen(api: APIClient, prediction_id: str, until: threading.Event) -> set[str]:
    seen: set[str] = set()
    while not until.is_set():
        body = api.get(f"/v1/predictions/{prediction_id}").json()
        if body["status"] not in ("starting", "processing"):
            break
        if body.get("queue"):
            seen.add(body["queue"]["phase"])
        time.sleep(0.05)
    return seen


def test_a_full_host_evicts_the_least_recently_used_idle_instance(
    start_agent: Any, api: APIClient, user: Any
) -> None:
    a, b, c = publish(user, "hello"), publish(user, "text-stream"), publish(user, "input-types")
    start_agent(max_instances=2, idle_timeout=300, INSTANCE_MIN_RESIDENCY="1")
    run(api, a, {"text": "one"})
    run(api, b, {"max_tokens": 3})
    time.sleep(1.2)  # past the minimum residency
    run(api, a, {"text": "again"})  # a is now the most recently used; b the least

    third = run(api, c)

    ours = instance_of(c)
    assert ours.ready_at is not None and third.started_at is not None
    queue_time = (third.started_at - third.created_at).total_seconds()
    setup_time = (ours.ready_at - ours.created_at).total_seconds()
    assert queue_time <= setup_time + 5, (queue_time, setup_time)
    evicted = instance_of(b)
    assert evicted.state == Instance.State.STOPPED
    assert evicted.stop_cause == "evicted" and evicted.replaced_by_id == ours.pk
    assert "evicted to make room" in evicted.stop_reason
    assert instance_of(a).state == Instance.State.READY
    # Counted in /metrics by cause, and shown on the operators' hosts page.
    values = samples(exposition().decode())
    assert values[("marketplace_instance_stops_total", (("cause", "evicted"),))] == 1
    staff = Client()
    staff.force_login(UserFactory(username="ops", is_staff=True))
    page = staff.get("/ops/hosts/").content.decode()
    assert f'data-evicted="{evicted.pk}"' in page and c.model.full_name in page


class Watch(threading.Thread):
    """Every 50 ms: a kept instance must stay ready, and a busy one must not be on its way out."""

    def __init__(self, kept: Deployment, busy_prediction: str):
        super().__init__(daemon=True)
        self.kept = kept
        self.busy_prediction = busy_prediction
        self.stop = threading.Event()
        self.violations: list[str] = []
        self.samples = 0

    def run(self) -> None:
        from django.db import connection

        try:
            while not self.stop.wait(0.05):
                self.samples += 1
                kept = list(Instance.objects.filter(deployment=self.kept))
                if any(i.state != Instance.State.READY for i in kept if i.ready_at):
                    self.violations.append(f"kept instance left: {[i.state for i in kept]}")
                busy = Prediction.objects.select_related("instance").get(pk=self.busy_prediction)
                if busy.status == "processing" and busy.instance.state != Instance.State.READY:
                    self.violations.append(f"busy instance {busy.instance.state} while running")
        finally:
            connection.close()


def test_busy_and_kept_instances_are_never_evicted_and_the_waiting_one_says_so(
    start_agent: Any, api: APIClient, user: Any
) -> None:
    hello, slow, stream = (
        publish(user, "hello"),
        publish(user, "slow-progress"),
        publish(user, "text-stream"),
    )
    start_agent(max_instances=2, idle_timeout=300, INSTANCE_MIN_RESIDENCY="0.5")
    response = api.post(
        "/v1/deployments",
        {
            "name": "kept",
            "model": hello.model.full_name,
            "version": hello.pk,
            "hardware": "cpu",
            "min_instances": 1,
            "max_instances": 1,
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    kept = Deployment.objects.get(name="kept")
    wait_for(
        lambda: Instance.objects.filter(deployment=kept, state="ready").exists(),
        timeout=60,
        message="the deployment's floor instance",
    )
    busy = create(api, slow.pk, {"steps": 16, "step_seconds": 0.25}, wait=None)["id"]
    wait_for(
        lambda: Prediction.objects.filter(pk=busy, status="processing").exists(),
        timeout=60,
        message="the slow prediction to run",
    )
    watch = Watch(kept, busy)
    watch.start()
    done = threading.Event()
    try:
        waiting = create(api, stream.pk, {"max_tokens": 3}, wait=None)["id"]
        seen = phases_seen(api, waiting, done)
        result = finished(waiting, timeout=90)
    finally:
        done.set()
        watch.stop.set()
        watch.join()
    assert watch.samples > 20 and watch.violations == []
    assert "waiting_for_capacity" in seen, seen
    assert result.status == "succeeded", result.error
    slow_prediction = Prediction.objects.get(pk=busy)
    evicted = Instance.objects.get(pk=slow_prediction.instance_id)
    assert evicted.stop_cause == "evicted"
    assert slow_prediction.completed_at is not None and evicted.stopped_at is not None
    assert evicted.stopped_at >= slow_prediction.completed_at
    assert Instance.objects.filter(deployment=kept, state="ready").count() == 1


def test_two_models_on_one_slot_take_turns_of_at_least_the_residency(
    start_agent: Any, api: APIClient, user: Any
) -> None:
    residency = 3.0
    a, b = publish(user, "hello"), publish(user, "text-stream")
    start_agent(max_instances=1, idle_timeout=300, INSTANCE_MIN_RESIDENCY=str(residency))
    for version, input in [(a, {"text": "1"}), (b, {"max_tokens": 2})] * 2:
        run(api, version, input)
    rows = list(Instance.objects.order_by("pk"))
    # One instance per turn: nothing started twice, nothing thrashed.
    assert [i.version_id for i in rows] == [a.pk, b.pk, a.pk, b.pk]
    for older, newer in itertools.pairwise(rows):
        assert older.stop_cause == "evicted" and older.replaced_by_id == newer.pk
        assert older.ready_at is not None and older.stopped_at is not None
        held = (older.stopped_at - older.ready_at).total_seconds()
        assert held >= residency - 0.1, held
