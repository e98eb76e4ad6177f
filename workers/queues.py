"""Queue names, enqueue helpers and the registry of live instances.

Each version has its own RQ queue (``version:<id>``); instances of that version pull from it, which
gives warm affinity without a central scheduler. When no live instance serves a version, a
``start_instance`` request goes to the hardware queue (``hw:<sku>``) that only agents with that
hardware consume.

Instances publish themselves in a sorted set per version, scored by when their registration
expires; agents refresh it with their heartbeat, so a killed agent's instances drop out on their
own.
"""

from __future__ import annotations

import time
from typing import cast

from django.conf import settings
from rq import Queue

from marketplace.redisconn import as_text, get_redis

RUN_PREDICTION = "workers.jobs.predictions.run_prediction"
START_INSTANCE = "workers.jobs.instances.start_instance"


def version_queue(version_id: str) -> Queue:
    return Queue(f"version:{version_id}", connection=get_redis())


def hardware_queue(sku: str) -> Queue:
    return Queue(f"hw:{sku}", connection=get_redis())


def _live_key(version_id: str) -> str:
    return f"mk:version:{version_id}:instances"


def _starting_key(version_id: str) -> str:
    return f"mk:version:{version_id}:starting"


def registration_ttl() -> float:
    return max(10.0, settings.AGENT_HEARTBEAT_SECONDS * 5)


def register_instance(version_id: str, instance_id: int) -> None:
    get_redis().zadd(_live_key(version_id), {str(instance_id): time.time() + registration_ttl()})


def deregister_instance(version_id: str, instance_id: int) -> None:
    get_redis().zrem(_live_key(version_id), str(instance_id))


def live_instance_count(version_id: str) -> int:
    return int(get_redis().zcount(_live_key(version_id), time.time(), "+inf"))


def queue_length(version_id: str) -> int:
    return int(version_queue(version_id).count)


def enqueue_prediction(prediction_id: str, version_id: str, sku: str, secrets: str | None) -> None:
    """Queue a prediction, then make sure something will serve the queue.

    Push first, look for instances second: an instance stopping for idleness deregisters first
    and looks at the queue second, so one of the two always sees the other.
    """
    version_queue(version_id).enqueue(
        RUN_PREDICTION,
        prediction_id,
        secrets,
        job_id=prediction_id,
        job_timeout=-1,  # runners enforce the prediction timeout themselves
        result_ttl=0,
        failure_ttl=24 * 3600,
    )
    ensure_instance(version_id, sku)


def ensure_instance(version_id: str, sku: str) -> bool:
    """Ask for an instance unless one is live or already being started. True if asked."""
    if live_instance_count(version_id) > 0:
        return False
    return request_instance(version_id, sku)


def request_instance(version_id: str, sku: str, *, force: bool = False) -> bool:
    # One start request at a time per version; the agent clears the flag when the start ends.
    guard_ttl = int(settings.INSTANCE_SETUP_TIMEOUT) + 60
    if not force and not get_redis().set(_starting_key(version_id), "1", nx=True, ex=guard_ttl):
        return False
    hardware_queue(sku).enqueue(
        START_INSTANCE, version_id, sku, job_timeout=-1, result_ttl=0, failure_ttl=24 * 3600
    )
    return True


def clear_start_request(version_id: str) -> None:
    get_redis().delete(_starting_key(version_id))


def remove_queued_prediction(version_id: str, prediction_id: str) -> bool:
    """Take a queued prediction off its queue (cancel before start). True if it was queued."""
    queue = version_queue(version_id)
    removed = bool(get_redis().lrem(queue.key, 0, prediction_id))
    if removed and (job := queue.fetch_job(prediction_id)) is not None:
        job.delete()
    return removed


def drain_version_queue(version_id: str) -> list[str]:
    """Pop every queued prediction id of a version (used when its setup fails)."""
    queue = version_queue(version_id)
    ids: list[str] = []
    while (raw := get_redis().lpop(queue.key)) is not None:
        ids.append(as_text(cast(bytes, raw)))
    for job_id in ids:
        job = queue.fetch_job(job_id)
        if job is not None:
            job.delete()
    return ids
