"""Start requests: asking the hosts of a hardware type for one more instance of a pool.

A request is an id in the pool's ``pending`` set (so the pool counts it as on its way) plus an RQ
job on the hardware's queue ``hw:<sku>``, whose function is ``START_INSTANCE``. Host agents are
RQ workers of the queues of their hardware (``workers/agent.py``) and take a job only while they
have room for an instance, counting room they can free by evicting an idle one. Taking moves the
request to ``booting`` (``take``); once its Cog server is up it is in ``setup``; the instance's
registration ends it. Requests expire, so one lost with a Redis restart or a killed agent no
longer counts as on its way, and the reconciler asks again.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from django.conf import settings
from rq import Queue

from marketplace.redisconn import get_redis
from marketplace.scheduling import instances, placement, pools
from marketplace.scheduling.pools import POOLS_KEY, prefix
from marketplace.scheduling.scripts import script

# The job function agents run (a dotted path is a contract: queued jobs store it).
START_INSTANCE = "workers.jobs.instances.start_instance"
# Runs counted per model since the last flush into Model.run_count (``catalog.runs``).
RUNS_KEY = "mk:runs"


def hardware_queue(sku: str) -> Queue:
    return Queue(f"hw:{sku}", connection=get_redis())


def request_ttl() -> float:
    return settings.INSTANCE_SETUP_TIMEOUT + 60


def _send(pool: str, version_id: str, sku: str, request_id: str, *, at_front: bool = False) -> None:
    hardware_queue(sku).enqueue(
        START_INSTANCE,
        pool,
        version_id,
        sku,
        request_id,
        job_timeout=-1,
        result_ttl=0,
        failure_ttl=24 * 3600,
        at_front=at_front,
    )


@dataclass(frozen=True)
class Enqueued:
    """Where a prediction stands right after it was queued."""

    position: int
    state: instances.PoolState
    # Instances of its hardware the hosts could start now (``placement``).
    room: int


def enqueue(
    prediction_id: str,
    pool: str,
    account_id: int,
    secrets: str | None,
    *,
    version_id: str,
    sku: str,
    model_id: int,
) -> Enqueued:
    """A new prediction, in one round trip: queue it, count the run for its model
    (``catalog.runs``), and make sure something will serve the pool; answer where it stands.

    Push first, look for instances second: an instance leaving for idleness looks at the queue
    atomically with leaving (``instances.release_if_idle``), so one of the two always sees the
    other.
    """
    request_id = uuid.uuid4().hex
    now = time.time()
    reply = script("enqueue")(
        keys=[POOLS_KEY, RUNS_KEY, placement.room_key(sku)],
        args=[
            prefix(pool),
            prediction_id,
            str(account_id),
            pools.payload(account_id, secrets),
            pool,
            now,
            now + request_ttl(),
            request_id,
            str(model_id),
        ],
    )
    asked, position, queued, live, pending, booting, setup, draining, busy, runs, setups, room = (
        reply
    )
    if asked:
        _send(pool, version_id, sku, request_id)
    pairs = dict(zip(busy[::2], busy[1::2], strict=True))
    state = instances.state_from(
        pool, queued, live, pending, booting, setup, draining, pairs, runs, setups
    )
    reports = dict(zip(room[::2], room[1::2], strict=True))
    return Enqueued(int(position), state, placement.room_in(reports))


def ensure(pool: str, version_id: str, sku: str) -> bool:
    """Ask for an instance unless the pool has one live or on its way. True if asked."""
    request_id = uuid.uuid4().hex
    now = time.time()
    asked = script("ensure")(
        keys=[POOLS_KEY], args=[prefix(pool), now, now + request_ttl(), request_id, pool]
    )
    if asked:
        _send(pool, version_id, sku, request_id)
    return bool(asked)


def request(pool: str, version_id: str, sku: str, count: int = 1) -> int:
    """Ask the hosts of ``sku`` for ``count`` more instances of the pool (counted as pending)."""
    conn = get_redis()
    for _ in range(count):
        request_id = uuid.uuid4().hex
        pipe = conn.pipeline(transaction=False)
        pipe.zadd(prefix(pool) + "pending", {request_id: time.time() + request_ttl()})
        pipe.sadd(POOLS_KEY, pool)
        pipe.execute()
        _send(pool, version_id, sku, request_id)
    return count


def take(pool: str, request_id: str) -> bool:
    """An agent takes a start request: pending → booting. False if it was withdrawn or expired."""
    now = time.time()
    return bool(script("take")(args=[prefix(pool), request_id, now, now + request_ttl()]))


def hand_back(pool: str, version_id: str, sku: str, request_id: str) -> None:
    """Return a taken request, at the front of its queue, for any host (this one had no room
    after all)."""
    pipe = get_redis().pipeline(transaction=True)
    pipe.zrem(prefix(pool) + "booting", request_id)
    pipe.zadd(prefix(pool) + "pending", {request_id: time.time() + request_ttl()})
    pipe.execute()
    _send(pool, version_id, sku, request_id, at_front=True)


def setup_started(pool: str, request_id: str) -> None:
    """The Cog server is up and running the model's setup: booting → setup."""
    p = prefix(pool)
    pipe = get_redis().pipeline(transaction=True)
    pipe.zrem(p + "booting", request_id)
    pipe.zadd(p + "setup", {request_id: time.time() + request_ttl()})
    pipe.execute()
