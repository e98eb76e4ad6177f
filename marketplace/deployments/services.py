"""Host bookkeeping: GPU allocation for new instances, and writing off hosts that went silent.

GPUs: a host's inventory is ``Host.gpus`` (reported by its agent); a GPU is in use while a live
instance (starting, ready, stopping) on that host lists it in ``gpu_device_ids``. Allocation takes
the host row's lock, so concurrent starts — several threads of one agent, or a second agent
process for the same host — are serialised and never hand out a device twice. Stopping or failing
an instance frees its GPUs by taking it out of the live states; nothing else to release.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from marketplace.catalog.models import Hardware, Version
from marketplace.deployments.models import Deployment, Host, Instance
from marketplace.predictions import policy
from marketplace.predictions.models import Prediction
from marketplace.predictions.policy import Outcome, StopCause
from marketplace.predictions.services import prediction_finish
from marketplace.scheduling import instances, pools, starts

logger = logging.getLogger(__name__)


def used_gpu_ids(host: Host) -> set[str]:
    used: set[str] = set()
    for ids in Instance.objects.filter(host=host, state__in=Instance.LIVE).values_list(
        "gpu_device_ids", flat=True
    ):
        used.update(str(i) for i in ids or [])
    return used


def free_gpu_ids(host: Host) -> list[str]:
    used = used_gpu_ids(host)
    return [device for device in host.gpu_device_ids if device not in used]


def instance_create(
    *,
    host: Host,
    version: Version,
    hardware: Hardware,
    runtime: str,
    deployment: Deployment | None = None,
    mode: str = "predict",
) -> Instance | None:
    """Create a starting instance with the GPUs its hardware needs; None if too few are free.
    ``mode="train"``: an instance of the version's trainer (one training at a time)."""
    with transaction.atomic():
        locked = Host.objects.select_for_update().get(pk=host.pk)
        devices: list[str] = []
        if hardware.gpu_count:
            free = free_gpu_ids(locked)
            if len(free) < hardware.gpu_count:
                return None
            devices = free[: hardware.gpu_count]
        return Instance.objects.create(
            host=locked,
            version=version,
            hardware=hardware,
            runtime=runtime,
            mode=mode,
            slots=1 if mode == "train" else version.concurrency,
            gpu_device_ids=devices,
            deployment=deployment,
        )


def heartbeat_grace() -> timedelta:
    return timedelta(seconds=max(10.0, settings.AGENT_HEARTBEAT_SECONDS * 5))


def instance_write_off(
    instance: Instance, *, cause: str, reason: str, outcome: Outcome
) -> list[str]:
    """An instance is gone without its supervisor ending it (its host went silent, its agent
    restarted): record that it ended and why, end the predictions it was running with
    ``outcome`` (they had started; what is still queued stays queued), forget it in its pool,
    and ask for a successor when its pool still has work. Returns the predictions it ended."""
    Instance.objects.filter(pk=instance.pk, state__in=Instance.LIVE).update(
        state=Instance.State.FAILED,
        stopped_at=timezone.now(),
        stop_reason=reason[:500],
        stop_cause=cause,
    )
    ended = [
        prediction_id
        for prediction_id in Prediction.objects.filter(
            instance=instance, status=Prediction.Status.PROCESSING
        ).values_list("pk", flat=True)
        if prediction_finish(prediction_id, outcome)
    ]
    pool = pools.pool_of(
        version_id=instance.version_id,
        deployment_id=instance.deployment_id,
        training=instance.mode == "train",
    )
    instances.gone(pool, instance.pk)
    if pools.length(pool) > 0:
        # Queued work stays queued; ask for a successor now rather than at the next tick.
        starts.ensure(pool, instance.version_id, instance.hardware.sku)
    return ended


@dataclass
class DownHost:
    host: Host
    failed: list[str]


def reconcile_down_hosts() -> list[DownHost]:
    """Mark hosts whose agent stopped heartbeating as down and write off their instances.

    Predictions that were running there end ``failed`` with the reason; queued predictions of the
    pools those instances served stay queued and get a new start request, so another host picks
    them up. Safe to run from several places at once (each host is taken under its lock).
    """
    cutoff = timezone.now() - heartbeat_grace()
    results = []
    for host_id in Host.objects.filter(
        down_at__isnull=True, last_heartbeat_at__lt=cutoff
    ).values_list("pk", flat=True):
        with transaction.atomic():
            host = (
                Host.objects.select_for_update(skip_locked=True)
                .filter(pk=host_id, down_at__isnull=True, last_heartbeat_at__lt=cutoff)
                .first()
            )
            if host is None:
                continue
            host.down_at = timezone.now()
            host.save(update_fields=["down_at"])
        last_seen = host.last_heartbeat_at.isoformat() if host.last_heartbeat_at else "never"
        outcome = policy.host_down(host.name, last_seen)
        live = list(
            Instance.objects.filter(host=host, state__in=Instance.LIVE).select_related("hardware")
        )
        failed = []
        for instance in live:
            failed += instance_write_off(
                instance,
                cause=StopCause.HOST_DOWN,
                reason="host down: its agent stopped heartbeating",
                outcome=outcome,
            )
        logger.warning(
            "host %s is down: %d instance(s) written off, %d prediction(s) failed",
            host.name,
            len(live),
            len(failed),
        )
        results.append(DownHost(host, failed))
    return results
