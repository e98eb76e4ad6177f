"""The reconciler on real parts: jobs dropped from Redis, a SIGKILLed agent, a lost Cancel-After
job, lost webhook jobs — each prediction ends truthful, billed at most once, and a second pass
changes nothing."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient
from rq import Queue
from standardwebhooks.webhooks import Webhook

from marketplace.billing.models import UsageEntry
from marketplace.predictions import reconcile, webhooks
from marketplace.predictions.models import Prediction
from marketplace.predictions.services import Outcome, prediction_finish
from marketplace.predictions.webhooks import WebhookDelivery
from marketplace.redisconn import get_redis
from marketplace.scheduling import instances, pools, starts
from tests.api.test_webhooks import Receiver
from tests.conftest import wait_for
from tests.factories import publish
from tests.workers.test_prediction_path import create, finished


def webhook_queue() -> Queue:
    return Queue(webhooks.QUEUE, connection=get_redis())


pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def no_grace(settings: Any) -> None:
    # Stuck at once: the tests make the faults, they need not wait for them to age.
    settings.PREDICTION_STUCK_SECONDS = 0


def queued(version_id: str) -> list[str]:
    return pools.queued_ids(pools.version_pool(version_id))


def drop_job(version_id: str, prediction_id: str) -> None:
    """What a Redis restart without persistence does to one queued prediction."""
    assert pools.remove(pools.version_pool(version_id), prediction_id)


def pending_requests(version_id: str) -> int:
    pool = pools.version_pool(version_id)
    return instances.states([pool])[pool].pending


def test_a_dropped_queued_job_is_queued_again_once_and_then_runs(
    api: APIClient, user: Any, start_agent: Any
) -> None:
    version = publish(user, "hello")
    pid = create(api, version.pk, {"text": "lost"}, wait=None)["id"]
    other = create(api, version.pk, {"text": "kept"}, wait=None)["id"]
    drop_job(version.pk, pid)
    assert queued(version.pk) == [other]
    report = reconcile.reconcile()
    assert report.requeued == [pid]
    # The start request the first create made is still pending: not asked for twice.
    assert report.start_requests == []
    assert pending_requests(version.pk) == 1
    # Idempotent: a second pass finds nothing to do and queues nothing twice.
    again = reconcile.reconcile()
    assert not again.changed and sorted(queued(version.pk)) == sorted([pid, other])
    start_agent()
    for prediction_id, text in ((pid, "lost"), (other, "kept")):
        prediction = finished(prediction_id)
        assert prediction.status == "succeeded" and prediction.output == f"hello {text}"
    assert UsageEntry.objects.filter(prediction_id=pid).count() == 1


def test_a_lost_start_request_is_asked_for_again(
    api: APIClient, user: Any, start_agent: Any
) -> None:
    version = publish(user, "hello")
    pid = create(api, version.pk, {"text": "x"}, wait=None)["id"]
    # The start request's job was lost, and its bookkeeping has expired (as it does after
    # INSTANCE_SETUP_TIMEOUT + 60 s): nothing will start an instance unless asked again.
    starts.hardware_queue("cpu").empty()
    pending_key = pools.prefix(pools.version_pool(version.pk)) + "pending"
    get_redis().zadd(pending_key, dict.fromkeys(get_redis().zrange(pending_key, 0, -1), 0))
    assert pending_requests(version.pk) == 0
    report = reconcile.reconcile()
    assert report.requeued == [] and report.start_requests == [pools.version_pool(version.pk)]
    assert pending_requests(version.pk) == 1
    assert not reconcile.reconcile().changed
    start_agent()
    assert finished(pid).status == "succeeded"


def test_sigkilled_agent_fails_its_prediction_and_another_serves_the_queue(
    api: APIClient, user: Any, start_agent: Any
) -> None:
    version = publish(user, "slow-progress")
    agent = start_agent()
    running = create(api, version.pk, {}, wait=None)["id"]
    waiting = create(api, version.pk, {}, wait=None)["id"]
    wait_for(
        lambda: Prediction.objects.get(pk=running).status == "processing",
        timeout=60,
        message="the first prediction to start",
    )
    agent.kill()  # SIGKILL: no cleanup, its Cog server dies with it (pdeathsig)
    # Nothing is written off before the host's heartbeat grace has passed.
    assert reconcile.reconcile().failed == []
    time.sleep(11)  # max(10 s, 5 heartbeats)
    report = reconcile.reconcile()
    assert report.hosts_down == 1 and report.failed == []  # the host write-off failed it
    lost = Prediction.objects.get(pk=running)
    assert lost.status == "failed" and agent.host_name in (lost.error or "")
    assert Prediction.objects.get(pk=waiting).status == "starting"
    assert not reconcile.reconcile().changed
    start_agent()
    assert finished(waiting).status == "succeeded"
    # The lost one was billed for the time it ran, once; nothing is billed twice.
    assert UsageEntry.objects.filter(prediction_id=running).count() == 1
    assert UsageEntry.objects.filter(prediction_id=waiting).count() == 1


def test_processing_on_an_instance_that_ended_is_failed_saying_so(
    api: APIClient, user: Any, start_agent: Any
) -> None:
    from marketplace.deployments.models import Instance

    version = publish(user, "slow-progress")
    agent = start_agent()
    pid = create(api, version.pk, {}, wait=None)["id"]
    wait_for(lambda: Prediction.objects.get(pk=pid).status == "processing", timeout=60)
    agent.kill()
    # The instance's end was recorded (a runner that died after marking it), but not the
    # prediction's: the reconciler does not wait for the host to be written off.
    instance = Prediction.objects.get(pk=pid).instance
    assert instance is not None
    Instance.objects.filter(pk=instance.pk).update(
        state=Instance.State.FAILED, stopped_at=instance.created_at, stop_reason="crashed"
    )
    report = reconcile.reconcile()
    assert report.failed == [pid]
    prediction = Prediction.objects.get(pk=pid)
    assert prediction.status == "failed" and "ended (crashed)" in (prediction.error or "")


def test_a_lost_cancel_after_job_still_cancels_without_billing(api: APIClient, user: Any) -> None:
    version = publish(user, "hello")
    response = api.post(
        "/v1/predictions",
        {"version": version.pk, "input": {"text": "x"}},
        format="json",
        headers={"Cancel-After": "5s"},
    )
    pid = response.json()["id"]
    scheduled = Queue("default", connection=get_redis()).scheduled_job_registry
    for job_id in scheduled.get_job_ids():  # the deadline job is lost
        scheduled.remove(job_id, delete_job=True)
    assert reconcile.reconcile().canceled == []
    time.sleep(6.2)
    assert reconcile.reconcile().canceled == [pid]
    prediction = Prediction.objects.get(pk=pid)
    assert prediction.status == "canceled" and prediction.started_at is None
    assert not UsageEntry.objects.filter(prediction_id=pid).exists()
    assert queued(version.pk) == []


def test_lost_and_unrecorded_webhooks_are_delivered_signed(
    api: APIClient, user: Any, start_worker: Any
) -> None:
    hook = Receiver([])
    try:
        version = publish(user, "hello")
        first = create(api, version.pk, {"text": "a"}, wait=None)["id"]
        second = create(api, version.pk, {"text": "b"}, wait=None)["id"]
        Prediction.objects.update(webhook=hook.url, webhook_events_filter=["completed"])
        prediction_finish(first, Outcome("succeeded", output="hello a"))
        # Its delivery job is lost with Redis...
        webhook_queue().empty()
        # ...and the second finished in a process that died before recording its webhook.
        prediction_finish(second, Outcome("succeeded", output="hello b"))
        WebhookDelivery.objects.filter(prediction_id=second).delete()
        webhook_queue().empty()
        call_command("reconcile_predictions")
        report = reconcile.reconcile()
        assert report.webhooks_recorded == 0  # the command already recorded it
        start_worker("webhooks")
        wait_for(lambda: len(hook.requests) >= 2, timeout=30, message="both webhooks")
        verifier = Webhook(user.account.webhook_secret)
        seen = set()
        for _, headers, body in hook.requests:
            payload = verifier.verify(body, headers)
            seen.add(payload["id"])
        assert seen == {first, second}
        wait_for(
            lambda: (
                set(WebhookDelivery.objects.values_list("status", flat=True))
                == {webhooks.WebhookDelivery.Status.DELIVERED}
            )
        )
    finally:
        hook.close()


def test_processing_without_an_instance_waits_for_the_grace_period(
    api: APIClient, user: Any, settings: Any
) -> None:
    from marketplace.predictions.services import prediction_claim

    version = publish(user, "hello")
    pid = create(api, version.pk, {"text": "x"}, wait=None)["id"]
    assert prediction_claim(pid, None)  # type: ignore[arg-type]
    settings.PREDICTION_STUCK_SECONDS = 3600
    assert reconcile.reconcile().failed == []
    settings.PREDICTION_STUCK_SECONDS = 0
    assert reconcile.reconcile().failed == [pid]
    prediction = Prediction.objects.get(pk=pid)
    assert prediction.status == "failed" and "is gone" in (prediction.error or "")
    assert UsageEntry.objects.filter(prediction_id=pid).count() == 1


def test_a_delivery_waiting_behind_a_backlog_is_not_queued_again(api: APIClient, user: Any) -> None:
    version = publish(user, "hello")
    pid = create(api, version.pk, {"text": "x"}, wait=None)["id"]
    Prediction.objects.filter(pk=pid).update(webhook="http://127.0.0.1:9/h")
    prediction_finish(pid, Outcome("succeeded", output="hello x"))
    queue = webhook_queue()
    assert queue.count == 1
    # Due long ago but still queued (workers are behind): left alone, however often we pass.
    for _ in range(3):
        assert reconcile.reconcile().webhooks_requeued == 0
    assert queue.count == 1
    queue.empty()  # now it is lost
    assert reconcile.reconcile().webhooks_requeued == 1
    assert queue.count == 1
