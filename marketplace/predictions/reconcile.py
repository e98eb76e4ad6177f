"""The reconciler: every prediction ends up in a truthful state, whatever was lost on the way.

Redis holds queued jobs, start requests, deadline jobs and webhook jobs; agents hold running
predictions. A Redis restart, a SIGKILLed agent or worker, or a crash between a commit and the
``on_commit`` that queues something can leave a prediction ``starting`` with nothing that will
ever run it, ``processing`` on an instance that is gone, or a finished prediction whose
``completed`` webhook never goes out. :func:`reconcile` finds each case and repairs it:

- hosts that stopped heartbeating are written off first (``reconcile_down_hosts``), which fails
  what they were running and asks for new instances;
- ``starting`` past its ``deadline``: canceled (it never started, so nothing is billed);
- ``starting`` for longer than ``PREDICTION_STUCK_SECONDS`` and not in its pool's queue (it was
  lost): queued again (a prediction with secret inputs is then failed by its runner,
  saying so: their values only lived in the lost job);
- queued, but nothing serves its pool and no start request is live: a new start request;
- ``processing`` on an instance that ended (or no instance): failed, saying why; past its
  deadline or ``PREDICTION_TIMEOUT`` by more than the grace period: ended as the runner would;
- webhook deliveries still pending well after they were due (their job was lost): queued again;
  finished predictions whose ``completed`` webhook was never recorded: recorded and queued.

Every repair is conditional (``prediction_finish`` wins once, and settles billing once; a
re-queued job is idempotent at claim), so running it twice, or in several places at once, is
safe. Agents run it every ``PREDICTION_RECONCILE_SECONDS`` (one of them per period, under a Redis
lock); ``manage.py reconcile_predictions`` runs it from cron or in a loop.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from marketplace.deployments.models import Instance
from marketplace.predictions import events, policy, webhooks
from marketplace.predictions.deadlines import expire
from marketplace.predictions.models import Prediction
from marketplace.predictions.services import prediction_finish
from marketplace.predictions.webhooks import WebhookDelivery
from marketplace.redisconn import get_redis
from marketplace.scheduling import pools, starts

logger = logging.getLogger(__name__)

Status = Prediction.Status
LOCK_KEY = "mk:reconcile:lock"
# Finished predictions older than this are not searched for missing webhooks (bounded scan).
WEBHOOK_LOOKBACK = timedelta(days=1)


@dataclass
class Report:
    hosts_down: int = 0
    requeued: list[str] = field(default_factory=list)
    start_requests: list[str] = field(default_factory=list)
    canceled: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    webhooks_requeued: int = 0
    webhooks_recorded: int = 0

    @property
    def changed(self) -> bool:
        return any(
            (
                self.hosts_down,
                self.requeued,
                self.start_requests,
                self.canceled,
                self.failed,
                self.webhooks_requeued,
                self.webhooks_recorded,
            )
        )

    def summary(self) -> str:
        return (
            f"{self.hosts_down} host(s) written off, {len(self.requeued)} prediction(s) queued "
            f"again, {len(self.start_requests)} start request(s), {len(self.canceled)} canceled, "
            f"{len(self.failed)} failed, {self.webhooks_requeued} webhook(s) queued again, "
            f"{self.webhooks_recorded} missing webhook(s) recorded"
        )


def grace() -> timedelta:
    return timedelta(seconds=settings.PREDICTION_STUCK_SECONDS)


def reconcile(now: datetime | None = None) -> Report:
    """One pass over everything that may be stuck. Safe to repeat and to run concurrently."""
    from marketplace.deployments.services import reconcile_down_hosts

    report = Report()
    report.hosts_down = len(reconcile_down_hosts())
    now = now or timezone.now()
    _starting(now, report)
    _processing(now, report)
    _webhooks(now, report)
    if report.changed:
        logger.warning("reconciled: %s", report.summary())
    return report


def run_periodically() -> Report | None:
    """What agents call from their heartbeat: at most one reconcile per period, cluster-wide."""
    period = settings.PREDICTION_RECONCILE_SECONDS
    if not get_redis().set(LOCK_KEY, "1", nx=True, ex=max(1, int(period))):
        return None
    return reconcile()


# --- starting --------------------------------------------------------------------------------
def _starting(now: datetime, report: Report) -> None:
    for pid in Prediction.objects.filter(
        status=Status.STARTING, deadline__lt=now - timedelta(seconds=1)
    ).values_list("pk", flat=True):
        # Its Cancel-After job was lost: do what it would have done.
        if expire(pid):
            report.canceled.append(pid)
    stuck = list(
        Prediction.objects.filter(status=Status.STARTING, created_at__lt=now - grace())
        .values_list("pk", "version_id", "deployment_id", "account_id", "hardware__sku", "kind")
        .order_by("created_at")
    )
    waiting: dict[str, tuple[str, str]] = {}
    queued_by_pool: dict[str, set[str]] = {}
    for pid, version_id, deployment_id, account_id, sku, kind in stuck:
        pool = pools.pool_of(
            version_id=version_id,
            deployment_id=deployment_id,
            training=kind == Prediction.Kind.TRAINING,
        )
        if pool not in queued_by_pool:
            queued_by_pool[pool] = set(pools.queued_ids(pool))
        if pid not in queued_by_pool[pool]:
            # Still starting now? (A runner may have claimed it since the query.)
            if not Prediction.objects.filter(pk=pid, status=Status.STARTING).exists():
                continue
            pools.push(pool, pid, account_id, None)
            report.requeued.append(pid)
        waiting[pool] = (version_id, sku)
    for pool, (version_id, sku) in waiting.items():
        # Asks only when nothing serves the pool and no start request is live (requests expire,
        # so one lost with a Redis restart or a killed agent no longer blocks new ones).
        if starts.ensure(pool, version_id, sku):
            report.start_requests.append(pool)


# --- processing ------------------------------------------------------------------------------
def _processing(now: datetime, report: Report) -> None:
    cutoff = now - grace()
    ended = Prediction.objects.filter(status=Status.PROCESSING).filter(
        Q(instance__isnull=True, started_at__lt=cutoff)
        | Q(instance__state__in=(Instance.State.STOPPED, Instance.State.FAILED))
        & Q(instance__stopped_at__lt=cutoff)
        | Q(instance__host__down_at__lt=cutoff)
    )
    for prediction in ended.select_related("instance__host"):
        instance = prediction.instance
        reason: str | None = None
        if instance is not None:
            reason = instance.stop_reason or (
                f"host {instance.host.name} down" if instance.host.down_at else instance.state
            )
        if prediction_finish(prediction.pk, policy.instance_lost(reason)):
            report.failed.append(prediction.pk)
    overdue = Prediction.objects.filter(status=Status.PROCESSING).filter(
        Q(deadline__lt=cutoff)
        | Q(started_at__lt=cutoff - timedelta(seconds=settings.PREDICTION_TIMEOUT))
    )
    for prediction in overdue.only("pk", "deadline", "started_at"):
        # Its runner should have stopped it: tell it to, and end it as the runner would have.
        events.request_cancel(prediction.pk)
        if prediction.deadline is not None and prediction.deadline < cutoff:
            outcome, bucket = policy.deadline_passed(), report.canceled
        else:
            outcome, bucket = policy.timed_out(settings.PREDICTION_TIMEOUT), report.failed
        if prediction_finish(prediction.pk, outcome):
            bucket.append(prediction.pk)


# --- webhooks --------------------------------------------------------------------------------
def _webhooks(now: datetime, report: Report) -> None:
    cutoff = now - grace()
    # Due long ago and still pending: the job that was to deliver it was lost.
    lost = WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING).filter(
        Q(next_attempt_at__isnull=True, created_at__lt=cutoff) | Q(next_attempt_at__lt=cutoff)
    )
    waiting = webhooks.queued_delivery_ids()
    for delivery_id in lost.values_list("pk", flat=True):
        if delivery_id in waiting:
            continue  # behind a backlog, not lost: queuing it again would only grow the backlog
        # Pushed forward first, so that the next pass does not queue it a second time.
        WebhookDelivery.objects.filter(pk=delivery_id).update(next_attempt_at=now)
        webhooks.enqueue(delivery_id)
        report.webhooks_requeued += 1
    unrecorded = (
        Prediction.objects.filter(
            status__in=Prediction.TERMINAL,
            created_at__gte=now - WEBHOOK_LOOKBACK,
            completed_at__lt=cutoff,
        )
        .exclude(webhook="")
        .exclude(webhook_deliveries__event=webhooks.COMPLETED)
    )
    for pid, events_filter in unrecorded.values_list("pk", "webhook_events_filter"):
        if webhooks.wanted(events_filter, webhooks.COMPLETED) and webhooks.notify(
            pid, webhooks.COMPLETED
        ):
            report.webhooks_recorded += 1
