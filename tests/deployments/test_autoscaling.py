"""The autoscaler on real parts: real agent processes (whose autoscaler threads elect a leader),
real Cog servers of a model that sleeps, PostgreSQL and Redis; the API drives it."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from typing import Any

import pytest
from django.db import connection
from rest_framework.test import APIClient

from marketplace.catalog.models import Model
from marketplace.deployments.models import Deployment, Instance
from marketplace.predictions.models import Prediction
from tests.conftest import wait_for
from tests.factories import FIXTURES, publish, token_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SLEEPY = FIXTURES / "cog" / "sleepy"


def deploy(api: APIClient, version: Any, **config: Any) -> Deployment:
    body = {
        "name": "sleepy",
        "model": version.model.full_name,
        "version": version.pk,
        "hardware": "cpu",
        "min_instances": 0,
        "max_instances": 1,
        **config,
    }
    response = api.post("/v1/deployments", body, format="json")
    assert response.status_code == 201, response.content
    return Deployment.objects.get(name="sleepy")


def live(deployment: Deployment, *states: str) -> list[Instance]:
    return list(Instance.objects.filter(deployment=deployment, state__in=states or Instance.LIVE))


class Sampler(threading.Thread):
    """Counts a deployment's instances (starting, ready or stopping) every 50 ms."""

    def __init__(self, deployment: Deployment):
        super().__init__(daemon=True)
        self.deployment = deployment
        self.most = 0
        self.most_ready = 0
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            while not self.stop.wait(0.05):
                rows = live(self.deployment)
                self.most = max(self.most, len(rows))
                ready = sum(1 for i in rows if i.state == Instance.State.READY)
                self.most_ready = max(self.most_ready, ready)
        finally:
            connection.close()


def finished(ids: list[str], timeout: float) -> list[Prediction]:
    def done() -> list[Prediction] | None:
        rows = list(Prediction.objects.filter(pk__in=ids))
        return rows if all(p.is_terminal for p in rows) else None

    return wait_for(done, timeout=timeout, message="the predictions to finish")


def test_a_burst_scales_a_deployment_to_max_and_back_to_its_warm_minimum(
    api: APIClient, user: Any, start_agent: Any
) -> None:
    version = publish(user, SLEEPY, name="sleepy")
    start_agent(max_instances=4)
    deployment = deploy(api, version, min_instances=1, max_instances=3, idle_timeout=2)

    # min_instances=1: one instance starts without any traffic and stays past the idle timeout.
    wait_for(lambda: len(live(deployment, Instance.State.READY)) == 1, timeout=60)
    warm = live(deployment)[0]
    time.sleep(3.5)
    assert [i.pk for i in live(deployment)] == [warm.pk]

    sampler = Sampler(deployment)
    sampler.start()
    url = "/v1/deployments/alice/sleepy/predictions"
    ids = [
        api.post(url, {"input": {"seconds": 0.5}}, format="json").json()["id"] for _ in range(40)
    ]
    predictions = finished(ids, timeout=180)
    assert {p.status for p in predictions} == {"succeeded"}
    assert {p.output for p in predictions} == {"v1 slept 0.5"}
    used = {p.instance_id for p in predictions}
    # Back to the floor once idle: exactly the minimum stays, and keeps staying.
    wait_for(lambda: len(live(deployment)) == 1, timeout=30, message="scale down to min")
    time.sleep(3)
    sampler.stop.set()
    sampler.join()
    assert sampler.most_ready == 3, "the burst should have reached max_instances"
    assert sampler.most <= 3, "max_instances was exceeded"
    assert len(used) == 3
    assert len(live(deployment, Instance.State.READY)) == 1
    stopped = Instance.objects.filter(deployment=deployment, state=Instance.State.STOPPED)
    assert stopped.count() == 2 and all("idle" in i.stop_reason for i in stopped)


def test_prewarm_starts_instances_ahead_of_traffic_and_they_scale_to_zero(
    api: APIClient, user: Any, start_agent: Any
) -> None:
    version = publish(user, SLEEPY, name="sleepy")
    start_agent(max_instances=4)
    deployment = deploy(api, version, min_instances=0, max_instances=2, idle_timeout=3)
    time.sleep(1)
    assert live(deployment) == []  # min 0: nothing runs without traffic
    response = api.post("/v1/deployments/alice/sleepy/prewarm", {"instances": 2}, format="json")
    assert response.status_code == 202 and response.json()["requested"] == 2
    wait_for(lambda: len(live(deployment, Instance.State.READY)) == 2, timeout=60)
    # A prediction right away meets a warm instance: no setup in its metrics.
    body = api.post(
        "/v1/deployments/alice/sleepy/predictions",
        {"input": {"seconds": 0.1}},
        format="json",
        headers={"Prefer": "wait=30"},
    ).json()
    assert body["status"] == "succeeded" and "setup_time" not in body["metrics"]
    wait_for(lambda: live(deployment) == [], timeout=30, message="scale to zero")


def test_a_new_version_rolls_over_without_dropping_queued_work(
    api: APIClient, user: Any, start_agent: Any
) -> None:
    v1 = publish(user, SLEEPY, name="sleepy")
    v2 = publish(user, FIXTURES / "cog" / "sleepy_v2", name="sleepy")
    start_agent(max_instances=4)
    deployment = deploy(api, v1, min_instances=1, max_instances=1)
    wait_for(lambda: len(live(deployment, Instance.State.READY)) == 1, timeout=60)
    old = live(deployment)[0]
    url = "/v1/deployments/alice/sleepy/predictions"
    ids = [api.post(url, {"input": {"seconds": 0.5}}, format="json").json()["id"] for _ in range(8)]
    patched = api.patch("/v1/deployments/alice/sleepy", {"version": v2.pk}, format="json")
    assert patched.json()["current_release"]["number"] == 2
    predictions = finished(ids, timeout=120)
    assert {p.status for p in predictions} == {"succeeded"}
    outputs = [p.output for p in sorted(predictions, key=lambda p: p.started_at)]
    assert outputs[0] == "v1 slept 0.5" and outputs[-1] == "v2 slept 0.5"
    # Each ran on (and is recorded with) the version of the instance that ran it.
    for prediction in predictions:
        instance = Instance.objects.get(pk=prediction.instance_id)
        assert prediction.version_id == instance.version_id
        assert prediction.output.startswith("v1" if instance.version_id == v1.pk else "v2")
    wait_for(
        lambda: Instance.objects.get(pk=old.pk).state == Instance.State.STOPPED,
        timeout=30,
        message="the old release's instance to stop",
    )
    assert "retired" in Instance.objects.get(pk=old.pk).stop_reason
    [current] = live(deployment)
    assert current.version_id == v2.pk


def test_accounts_take_turns_and_queue_positions_only_decrease(
    api: APIClient, user: Any, outsider: Any, start_agent: Any
) -> None:
    version = publish(user, SLEEPY, name="sleepy")  # public: both accounts share its instance
    start_agent(max_instances=2, VERSION_MAX_INSTANCES="1")
    bob = APIClient()
    bob.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(outsider)}")
    created = [
        api.post(
            "/v1/predictions",
            {"version": version.pk, "input": {"seconds": 0.4}},
            format="json",
        ).json()
        for _ in range(12)
    ]
    # Nothing served the version when the first arrived: it waits for an instance to start.
    assert created[0]["queue"] == {
        "position": 1,
        "estimated_start_at": None,
        "phase": "starting_instance",
    }
    burst = [body["id"] for body in created]
    single = bob.post(
        "/v1/predictions", {"version": version.pk, "input": {"seconds": 0.4}}, format="json"
    ).json()
    assert single["queue"]["position"] == 2  # after alice's first, before her second

    positions: dict[str, list[int]] = defaultdict(list)
    phases: set[str] = set()
    estimates = 0
    deadline = time.monotonic() + 120
    pending = {pid: client for pid in burst for client in [api]} | {single["id"]: bob}
    while pending and time.monotonic() < deadline:
        for pid, client in list(pending.items()):
            body = client.get(f"/v1/predictions/{pid}").json()
            queue = body.get("queue")
            if queue is None:
                pending.pop(pid)
                continue
            phases.add(queue["phase"])
            if queue["position"] is not None:
                positions[pid].append(queue["position"])
            estimates += queue["estimated_start_at"] is not None
        time.sleep(0.05)
    assert not pending, "predictions did not finish"

    for pid, seen in positions.items():
        assert seen == sorted(seen, reverse=True), f"{pid} went back in the queue: {seen}"
    assert {"running", "queued"} <= phases
    assert estimates > 0
    alice_runs = sorted(Prediction.objects.filter(pk__in=burst), key=lambda p: p.started_at)
    bobs = Prediction.objects.get(pk=single["id"])
    assert bobs.status == "succeeded"
    # Bob's one prediction ran second, not thirteenth: right after alice's first.
    assert alice_runs[0].started_at < bobs.started_at < alice_runs[1].started_at
    assert Instance.objects.filter(version=version).count() == 1


def test_a_models_idle_timeout_and_prewarm_for_its_shared_instances(
    api: APIClient, user: Any, start_agent: Any
) -> None:
    version = publish(user, SLEEPY, name="sleepy")
    Model.objects.filter(pk=version.model_id).update(idle_timeout=2)
    start_agent(max_instances=3, idle_timeout=600)  # the host's default would keep it for 10 min
    response = api.post("/v1/models/alice/sleepy/prewarm", {"instances": 2}, format="json")
    assert response.status_code == 202 and response.json()["requested"] == 2
    shared = Instance.objects.filter(version=version, deployment__isnull=True)
    wait_for(lambda: shared.filter(state=Instance.State.READY).count() == 2, timeout=60)
    body = api.post(
        "/v1/predictions",
        {"version": version.pk, "input": {"seconds": 0.1}},
        format="json",
        headers={"Prefer": "wait=30"},
    ).json()
    assert body["status"] == "succeeded" and "setup_time" not in body["metrics"]
    # The model's 2 s idle timeout, not the host's 600 s, stops them.
    wait_for(lambda: not shared.filter(state__in=Instance.LIVE).exists(), timeout=30)
    assert all("idle for 2 s" in i.stop_reason for i in shared)


def test_two_agents_share_one_autoscaler_and_a_burst_spreads_across_hosts(
    api: APIClient, user: Any, start_agent: Any
) -> None:
    version = publish(user, SLEEPY, name="sleepy")
    first, second = start_agent(max_instances=2), start_agent(max_instances=2)
    deployment = deploy(api, version, min_instances=0, max_instances=5, idle_timeout=2)
    sampler = Sampler(deployment)
    sampler.start()
    url = "/v1/deployments/alice/sleepy/predictions"
    ids = [
        api.post(url, {"input": {"seconds": 0.5}}, format="json").json()["id"] for _ in range(30)
    ]
    predictions = finished(ids, timeout=180)
    sampler.stop.set()
    sampler.join()
    assert {p.status for p in predictions} == {"succeeded"}
    # max_instances is 5 but the two hosts have room for 4: capacity wins, on both hosts.
    assert sampler.most == 4
    hosts = set(Instance.objects.filter(deployment=deployment).values_list("host__name", flat=True))
    assert hosts == {first.host_name, second.host_name}
    wait_for(lambda: live(deployment) == [], timeout=30, message="scale to zero")
