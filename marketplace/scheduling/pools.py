"""Pools and their fair queues: what a prediction waits in until a slot of an instance pops it.

See the package docstring for the Redis data model.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, cast

from marketplace.redisconn import as_text, get_redis
from marketplace.scheduling.scripts import script

POOLS_KEY = "mk:pools"


def version_pool(version_id: str) -> str:
    return f"version:{version_id}"


def deployment_pool(deployment_id: int) -> str:
    return f"deployment:{deployment_id}"


def training_pool(version_id: str) -> str:
    """A version's trainings: served by its train-mode instances (``--x-mode train``), which
    are other instances than the ones that run its predictions."""
    return f"training:{version_id}"


def pool_of(*, version_id: str, deployment_id: int | None, training: bool = False) -> str:
    """The pool a prediction (or training) queues on, or an instance serves."""
    if training:
        return training_pool(version_id)
    return deployment_pool(deployment_id) if deployment_id else version_pool(version_id)


def pool_of_prediction(prediction: Any) -> str:
    """The pool of a ``Prediction`` row (its kind, version and deployment)."""
    return pool_of(
        version_id=prediction.version_id,
        deployment_id=prediction.deployment_id,
        training=prediction.kind == "training",
    )


def is_training(pool: str) -> bool:
    return pool.startswith("training:")


def prefix(pool: str) -> str:
    return f"mk:pool:{pool}:"


def payload(account_id: int, secrets: str | None) -> str:
    """What the queue keeps of a prediction: its account and its sealed secrets."""
    return json.dumps({"a": str(account_id), "s": secrets}, separators=(",", ":"))


def push(pool: str, prediction_id: str, account_id: int, secrets: str | None) -> None:
    """Queue a prediction at the back of its account's list (no instance is asked for: see
    ``starts.enqueue`` for what creators call)."""
    script("push")(
        keys=[POOLS_KEY],
        args=[prefix(pool), prediction_id, str(account_id), payload(account_id, secrets), pool],
    )


def push_back(pool: str, prediction_id: str, account_id: int, secrets: str | None) -> None:
    """Return a popped prediction to the front of the queue (its instance cannot run it)."""
    script("push_back")(
        args=[prefix(pool), prediction_id, str(account_id), payload(account_id, secrets)]
    )


@dataclass(frozen=True)
class Popped:
    prediction_id: str
    account_id: int
    secrets: str | None


def pop(pool: str, instance_id: int, *, token_taken: bool = False) -> Popped | None:
    """The next prediction of the pool (round-robin across accounts), counted in flight for the
    instance; None when nothing is queued or the instance is no longer live."""
    raw = script("pop")(
        args=[prefix(pool), "0" if token_taken else "1", str(instance_id), time.time()]
    )
    if not raw:
        return None
    prediction_id, kept = as_text(raw[0]), as_text(raw[1])
    data = json.loads(kept) if kept else {}
    return Popped(prediction_id, int(data.get("a") or 0), data.get("s"))


def wait_for_work(pool: str, timeout: float) -> bool:
    """Block until a prediction is queued (True, its wake-up token taken) or ``timeout``."""
    return get_redis().blpop([prefix(pool) + "q:signal"], timeout=timeout) is not None


def length(pool: str) -> int:
    """Predictions queued in a pool (not yet taken by an instance)."""
    return int(cast(int, get_redis().hlen(prefix(pool) + "q:jobs")))


def lengths(pools: list[str]) -> dict[str, int]:
    pipe = get_redis().pipeline(transaction=False)
    for pool in pools:
        pipe.hlen(prefix(pool) + "q:jobs")
    return {pool: int(n) for pool, n in zip(pools, pipe.execute(), strict=True)}


def queued_ids(pool: str) -> list[str]:
    """Every queued prediction id of a pool (unordered; for the reconciler and tools)."""
    return sorted(as_text(k) for k in cast(list[bytes], get_redis().hkeys(prefix(pool) + "q:jobs")))


def queued_secrets(pool: str, prediction_id: str) -> str | None:
    raw = cast(bytes | None, get_redis().hget(prefix(pool) + "q:jobs", prediction_id))
    return None if raw is None else json.loads(raw).get("s")


def position(pool: str, prediction_id: str) -> int | None:
    """1-based place of a queued prediction in its pool's serving order, None if not queued."""
    raw = script("position")(args=[prefix(pool), prediction_id])
    return int(raw) if raw else None


def remove(pool: str, prediction_id: str) -> bool:
    """Take a queued prediction off its queue (cancel before start). True if it was queued."""
    return bool(script("remove")(args=[prefix(pool), prediction_id]))


def drain(pool: str) -> list[str]:
    """Take every queued prediction id off a pool (its setup failed, or it is being deleted)."""
    ids = queued_ids(pool)
    return [prediction_id for prediction_id in ids if remove(pool, prediction_id)]


def active() -> list[str]:
    """Pools with anything in them (queued work, instances or requests)."""
    return sorted(as_text(p) for p in cast(set[bytes], get_redis().smembers(POOLS_KEY)))


def forget_if_empty(pool: str) -> bool:
    return bool(script("forget")(keys=[POOLS_KEY], args=[prefix(pool), time.time(), pool]))
