"""The instance registry: which instances serve a pool, what they are doing, and how they leave.

An instance registers as ``live`` once its model is set up, and its agent's heartbeats refresh
the registration. It leaves through ``draining`` — idle for its timeout (``release_if_idle``),
evicted for another pool (``evict``), retired by the autoscaler or recycled by its supervisor
(``start_draining``) — and is forgotten once it has stopped (``gone``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, cast

from django.conf import settings

from marketplace.redisconn import as_text, get_redis
from marketplace.scheduling.pools import POOLS_KEY, prefix
from marketplace.scheduling.scripts import script

RETIRE_KEY = "mk:retire"
# Recent durations kept per pool for estimates.
SAMPLES = 50


def registration_ttl() -> float:
    return max(10.0, settings.AGENT_HEARTBEAT_SECONDS * 5)


def register(
    pool: str, instance_id: int, request_id: str = "", setup_seconds: float | None = None
) -> None:
    """The instance is set up and serves the pool; the start request it answered is done."""
    p = prefix(pool)
    pipe = get_redis().pipeline(transaction=True)
    pipe.zadd(p + "live", {str(instance_id): time.time() + registration_ttl()})
    pipe.zrem(p + "draining", str(instance_id))
    pipe.sadd(POOLS_KEY, pool)
    if request_id:
        pipe.zrem(p + "booting", request_id)
        pipe.zrem(p + "setup", request_id)
        pipe.hdel(p + "requests", str(instance_id))
    if setup_seconds is not None:
        pipe.lpush(p + "setups", f"{setup_seconds:.3f}")
        pipe.ltrim(p + "setups", 0, SAMPLES - 1)
    pipe.delete(p + "setup_faults")
    pipe.execute()


def setup_fault(pool: str) -> int:
    """Count a setup of this pool that the platform interrupted (killed, host lost, timed out);
    how many there were in a row. A successful registration starts the count again."""
    key = prefix(pool) + "setup_faults"
    pipe = get_redis().pipeline(transaction=True)
    pipe.incr(key)
    pipe.expire(key, 3600)
    count, _ = pipe.execute()
    return int(count)


def clear_setup_faults(pool: str) -> None:
    get_redis().delete(prefix(pool) + "setup_faults")


def refresh(pool: str, instance_id: int) -> bool:
    """A heartbeat: keep a live instance registered (after a Redis restart, register it again).
    Never brings back an instance that has started draining meanwhile."""
    now = time.time()
    return bool(
        script("refresh")(
            keys=[POOLS_KEY],
            args=[prefix(pool), str(instance_id), now + registration_ttl(), pool, now],
        )
    )


def release_if_idle(pool: str, instance_id: int) -> bool:
    """Leave the pool (live → draining) unless work is queued or the pool is at its floor."""
    now = time.time()
    return bool(
        script("release")(args=[prefix(pool), str(instance_id), now, now + registration_ttl()])
    )


def evict(pool: str, instance_id: int) -> bool:
    """Make the instance leave for another pool's (live → draining) if it runs nothing and its
    pool stays at its floor. False if it got work meanwhile, or is kept."""
    now = time.time()
    return bool(
        script("evict")(args=[prefix(pool), str(instance_id), now, now + registration_ttl()])
    )


def start_draining(pool: str, instance_id: int) -> None:
    """Stop taking work (retired, recycled or crashed): live → draining."""
    p = prefix(pool)
    pipe = get_redis().pipeline(transaction=True)
    pipe.zrem(p + "live", str(instance_id))
    pipe.zadd(p + "draining", {str(instance_id): time.time() + registration_ttl()})
    pipe.execute()


def bind_request(pool: str, instance_id: int, request_id: str) -> None:
    """Remember which start request an instance fulfils until it registers, so that writing
    the instance off (its host died during setup) also ends the request. Otherwise the request
    would count as "on its way" until it expires, and nothing would start a successor."""
    get_redis().hset(prefix(pool) + "requests", str(instance_id), request_id)


def gone(pool: str, instance_id: int, request_id: str = "") -> None:
    """Forget an instance that ended (or never started) everywhere in its pool."""
    p = prefix(pool)
    conn = get_redis()
    if not request_id and instance_id:
        request_id = as_text(conn.hget(p + "requests", str(instance_id)) or b"")
    pipe = conn.pipeline(transaction=True)
    for key in ("live", "draining"):
        pipe.zrem(p + key, str(instance_id))
    if request_id:
        for key in ("pending", "booting", "setup"):
            pipe.zrem(p + key, request_id)
    pipe.hdel(p + "requests", str(instance_id))
    pipe.hdel(p + "busy", str(instance_id))
    pipe.srem(RETIRE_KEY, str(instance_id))
    pipe.execute()


def finished_one(pool: str, instance_id: int, run_seconds: float | None) -> None:
    """A prediction popped by ``instance_id`` is done with; it ran ``run_seconds`` (None: it
    never ran, e.g. it was canceled while queued, and says nothing about run times)."""
    p = prefix(pool)
    pipe = get_redis().pipeline(transaction=False)
    pipe.hincrby(p + "busy", str(instance_id), -1)
    if run_seconds is not None:
        pipe.lpush(p + "runs", f"{run_seconds:.3f}")
        pipe.ltrim(p + "runs", 0, SAMPLES - 1)
    pipe.execute()


def live_count(pool: str) -> int:
    return int(cast(int, get_redis().zcount(prefix(pool) + "live", time.time(), "+inf")))


def set_floor(pool: str, floor: int) -> None:
    """Live instances the pool keeps however idle (a deployment's ``min_instances``)."""
    get_redis().set(prefix(pool) + "floor", floor, ex=60)


def at_floor(pool_names: list[str]) -> set[str]:
    """The pools among these that may not lose a live instance (their floor holds them)."""
    now = time.time()
    pipe = get_redis().pipeline(transaction=False)
    for pool in pool_names:
        pipe.get(prefix(pool) + "floor")
        pipe.zcount(prefix(pool) + "live", now, "+inf")
    replies = pipe.execute()
    return {
        pool
        for pool, floor, live in zip(pool_names, replies[::2], replies[1::2], strict=True)
        if floor is not None and int(live) <= int(floor)
    }


def retire(instance_ids: list[int]) -> None:
    """Tell these instances to stop taking work, finish what they run, and stop."""
    if instance_ids:
        get_redis().sadd(RETIRE_KEY, *[str(i) for i in instance_ids])


def is_retired(instance_id: int) -> bool:
    return bool(get_redis().sismember(RETIRE_KEY, str(instance_id)))


@dataclass
class PoolState:
    """One pool as the autoscaler and the queue estimates see it."""

    pool: str
    queued: int
    live: list[int]
    pending: int
    booting: int
    setup: int
    draining: list[int]
    busy: dict[int, int]
    runs: list[float]
    setups: list[float]

    @property
    def in_flight(self) -> int:
        return sum(
            n for i, n in self.busy.items() if n > 0 and (i in self.live or i in self.draining)
        )

    @property
    def starting(self) -> int:
        return self.pending + self.booting + self.setup


def state_from(
    pool: str,
    queued: Any,
    live: list[bytes],
    pending: Any,
    booting: Any,
    setup: Any,
    draining: list[bytes],
    busy: dict[bytes, bytes],
    runs: list[bytes],
    setups: list[bytes],
) -> PoolState:
    """A PoolState from the raw replies that read it (a pipeline here, or a script)."""
    return PoolState(
        pool=pool,
        queued=int(queued),
        live=[int(i) for i in live],
        pending=int(pending),
        booting=int(booting),
        setup=int(setup),
        draining=[int(i) for i in draining],
        busy={int(k): int(v) for k, v in busy.items()},
        runs=[float(r) for r in runs],
        setups=[float(s) for s in setups],
    )


def states(pools: list[str]) -> dict[str, PoolState]:
    """Everything about these pools, in one pipelined round trip."""
    now = time.time()
    pipe = get_redis().pipeline(transaction=False)
    for pool in pools:
        p = prefix(pool)
        pipe.hlen(p + "q:jobs")
        pipe.zrangebyscore(p + "live", now, "+inf")
        pipe.zcount(p + "pending", now, "+inf")
        pipe.zcount(p + "booting", now, "+inf")
        pipe.zcount(p + "setup", now, "+inf")
        pipe.zrangebyscore(p + "draining", now, "+inf")
        pipe.hgetall(p + "busy")
        pipe.lrange(p + "runs", 0, 19)
        pipe.lrange(p + "setups", 0, 9)
    results = pipe.execute()
    return {
        pool: state_from(pool, *results[index * 9 : index * 9 + 9])
        for index, pool in enumerate(pools)
    }
