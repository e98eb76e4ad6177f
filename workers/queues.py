"""Prediction queues, instance start requests and the registry of instances, per *pool*.

A pool is what a set of interchangeable instances serves: ``version:<id>`` (the shared instances
of a version: every account's predictions on a public model) or ``deployment:<id>`` (a
deployment's own instances, whatever version it runs now). Everything about a pool lives under
``mk:pool:<pool>:`` in Redis:

- ``q:jobs`` (hash prediction id → ``{"a": account, "s": sealed secrets}``): what is queued; its
  length is the queue depth.
- ``q:a:<account>`` (list of prediction ids) per account, and ``q:ring`` (list of the accounts
  that have queued work, in serving order). A pop serves the account at the head of the ring and
  moves it to the tail, so accounts take turns: one account's burst cannot starve another's
  single prediction. An account is in the ring exactly while its list is non-empty.
- ``q:signal`` (list): one token per queued prediction, for slots to block on (``BLPOP``); the
  queue itself is popped by a Lua script (one round trip), since Lua cannot block.
- ``pending``, ``booting``, ``setup`` (sorted sets of start-request ids scored by expiry): asked
  for and not yet taken by an agent; taken, Cog server starting; Cog server up, running the
  model's ``setup()``. ``live`` (instance ids, scored by registration expiry, refreshed by the
  agents' heartbeats) serve the queue; ``draining`` instances finish in-flight work and stop.
- ``floor``: live instances kept however idle (a deployment's ``min_instances``, set by the
  autoscaler).
- ``busy`` (hash instance id → predictions in flight), ``runs``/``setups`` (recent run and setup
  seconds) for the autoscaler and for queue estimates.

``mk:pools`` lists the pools with anything in them, for the autoscaler.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any, cast

from django.conf import settings
from rq import Queue

from marketplace.redisconn import as_text, get_redis

START_INSTANCE = "workers.jobs.instances.start_instance"
POOLS_KEY = "mk:pools"
RETIRE_KEY = "mk:retire"
# Recent durations kept per pool for estimates.
SAMPLES = 50

# Queue a prediction: payload, the account's list, the ring (if the account was not in it), a
# wake-up token, and the pool in the pool index.
_ENQUEUE = """
local p = ARGV[1]
redis.call('HSET', p .. 'q:jobs', ARGV[2], ARGV[4])
if redis.call('RPUSH', p .. 'q:a:' .. ARGV[3], ARGV[2]) == 1 then
  redis.call('RPUSH', p .. 'q:ring', ARGV[3])
end
redis.call('RPUSH', p .. 'q:signal', '1')
redis.call('SADD', KEYS[1], ARGV[5])
return 1
"""

# The same at the front: a popped prediction handed back keeps its turn.
_PUSH_BACK = """
local p = ARGV[1]
redis.call('HSET', p .. 'q:jobs', ARGV[2], ARGV[4])
if redis.call('LPUSH', p .. 'q:a:' .. ARGV[3], ARGV[2]) == 1 then
  redis.call('LPUSH', p .. 'q:ring', ARGV[3])
end
redis.call('RPUSH', p .. 'q:signal', '1')
return 1
"""

# Pop the next prediction round-robin across accounts; count it in flight for the instance.
# ARGV[2] = '1' consumes a wake-up token too (the caller did not BLPOP one).
_POP = """
local p = ARGV[1]
for _ = 1, 1000 do
  local account = redis.call('LPOP', p .. 'q:ring')
  if not account then return false end
  local list = p .. 'q:a:' .. account
  local id = redis.call('LPOP', list)
  if id then
    if redis.call('LLEN', list) > 0 then redis.call('RPUSH', p .. 'q:ring', account) end
    local payload = redis.call('HGET', p .. 'q:jobs', id) or ''
    redis.call('HDEL', p .. 'q:jobs', id)
    if ARGV[2] == '1' then redis.call('LPOP', p .. 'q:signal') end
    redis.call('HINCRBY', p .. 'busy', ARGV[3], 1)
    return {id, payload}
  end
end
return false
"""

# Take one queued prediction off its pool (cancel before start).
_REMOVE = """
local p = ARGV[1]
local payload = redis.call('HGET', p .. 'q:jobs', ARGV[2])
if not payload then return 0 end
local account = cjson.decode(payload)['a']
local list = p .. 'q:a:' .. account
redis.call('HDEL', p .. 'q:jobs', ARGV[2])
redis.call('LREM', list, 0, ARGV[2])
if redis.call('LLEN', list) == 0 then redis.call('LREM', p .. 'q:ring', 0, account) end
redis.call('LPOP', p .. 'q:signal')
return 1
"""

# How many queued predictions will be served before this one if nothing else arrives: with
# round-robin turns, an account ahead of ours in the ring serves up to idx+1 before our item at
# index idx, one behind it up to idx.
_POSITION = """
local p = ARGV[1]
local payload = redis.call('HGET', p .. 'q:jobs', ARGV[2])
if not payload then return false end
local account = cjson.decode(payload)['a']
local idx = redis.call('LPOS', p .. 'q:a:' .. account, ARGV[2])
if not idx then return false end
local position = idx + 1
local ahead = true
for _, other in ipairs(redis.call('LRANGE', p .. 'q:ring', 0, -1)) do
  if other == account then
    ahead = false
  else
    local turns = idx
    if ahead then turns = idx + 1 end
    position = position + math.min(redis.call('LLEN', p .. 'q:a:' .. other), turns)
  end
end
return position
"""

# Ask for an instance only if the pool has none, live or on its way (the creators' fast path).
_ENSURE = """
local p = ARGV[1]
local now = tonumber(ARGV[2])
for _, set in ipairs({'live', 'pending', 'booting', 'setup'}) do
  if redis.call('ZCOUNT', p .. set, now, '+inf') > 0 then return 0 end
end
redis.call('ZADD', p .. 'pending', ARGV[3], ARGV[4])
redis.call('SADD', KEYS[1], ARGV[5])
return 1
"""

# Take a start request (pending → booting) unless it expired or another agent took it.
_TAKE = """
local p = ARGV[1]
local expires = redis.call('ZSCORE', p .. 'pending', ARGV[2])
if not expires or tonumber(expires) < tonumber(ARGV[3]) then return 0 end
redis.call('ZREM', p .. 'pending', ARGV[2])
redis.call('ZADD', p .. 'booting', ARGV[4], ARGV[2])
return 1
"""

# An idle instance leaves the pool unless work is queued or the pool would drop below its floor.
_RELEASE = """
local p = ARGV[1]
if redis.call('HLEN', p .. 'q:jobs') > 0 then return 0 end
local floor = tonumber(redis.call('GET', p .. 'floor') or '0')
if redis.call('ZCOUNT', p .. 'live', ARGV[3], '+inf') <= floor then return 0 end
if redis.call('ZREM', p .. 'live', ARGV[2]) == 0 then return 0 end
redis.call('ZADD', p .. 'draining', ARGV[4], ARGV[2])
return 1
"""

# Forget a pool with nothing in it (its queue, instances and requests all empty).
_FORGET = """
local p = ARGV[1]
local now = tonumber(ARGV[2])
if redis.call('HLEN', p .. 'q:jobs') > 0 then return 0 end
for _, set in ipairs({'live', 'pending', 'booting', 'setup', 'draining'}) do
  if redis.call('ZCOUNT', p .. set, now, '+inf') > 0 then return 0 end
end
redis.call('SREM', KEYS[1], ARGV[3])
return 1
"""


def _script(source: str) -> Any:
    # Registered per client: redis-py caches the SHA and falls back to EVAL once per process.
    return get_redis().register_script(source)


def version_pool(version_id: str) -> str:
    return f"version:{version_id}"


def deployment_pool(deployment_id: int) -> str:
    return f"deployment:{deployment_id}"


def pool_of(*, version_id: str, deployment_id: int | None) -> str:
    """The pool a prediction queues on (or an instance serves)."""
    return deployment_pool(deployment_id) if deployment_id else version_pool(version_id)


def _prefix(pool: str) -> str:
    return f"mk:pool:{pool}:"


def hardware_queue(sku: str) -> Queue:
    return Queue(f"hw:{sku}", connection=get_redis())


def registration_ttl() -> float:
    return max(10.0, settings.AGENT_HEARTBEAT_SECONDS * 5)


def _start_ttl() -> float:
    return settings.INSTANCE_SETUP_TIMEOUT + 60


# --- the queue -----------------------------------------------------------------------------


def enqueue_prediction(
    prediction_id: str,
    pool: str,
    account_id: int,
    secrets: str | None,
    *,
    version_id: str,
    sku: str,
) -> None:
    """Queue a prediction, then make sure something will serve the pool.

    Push first, look for instances second: an instance leaving for idleness looks at the queue
    atomically with leaving (``release``), so one of the two always sees the other.
    """
    payload = json.dumps({"a": str(account_id), "s": secrets}, separators=(",", ":"))
    _script(_ENQUEUE)(
        keys=[POOLS_KEY], args=[_prefix(pool), prediction_id, str(account_id), payload, pool]
    )
    ensure_instance(pool, version_id, sku)


@dataclass(frozen=True)
class Popped:
    prediction_id: str
    secrets: str | None


def pop(pool: str, instance_id: int, *, token_taken: bool = False) -> Popped | None:
    """The next prediction of the pool (round-robin across accounts), counted in flight."""
    raw = _script(_POP)(args=[_prefix(pool), "0" if token_taken else "1", str(instance_id)])
    if not raw:
        return None
    prediction_id, payload = as_text(raw[0]), as_text(raw[1])
    secrets = json.loads(payload).get("s") if payload else None
    return Popped(prediction_id, secrets)


def wait_for_work(pool: str, timeout: float) -> bool:
    """Block until a prediction is queued (True, its wake-up token taken) or ``timeout``."""
    return get_redis().blpop([_prefix(pool) + "q:signal"], timeout=timeout) is not None


def finished_one(pool: str, instance_id: int, run_seconds: float | None) -> None:
    """A prediction popped by ``instance_id`` is done with; it ran ``run_seconds`` (None: it
    never ran, e.g. it was canceled while queued, and says nothing about run times)."""
    prefix = _prefix(pool)
    pipe = get_redis().pipeline(transaction=False)
    pipe.hincrby(prefix + "busy", str(instance_id), -1)
    if run_seconds is not None:
        pipe.lpush(prefix + "runs", f"{run_seconds:.3f}")
        pipe.ltrim(prefix + "runs", 0, SAMPLES - 1)
    pipe.execute()


def push_back(pool: str, prediction_id: str, account_id: int, secrets: str | None) -> None:
    """Return a popped prediction to the front of the queue (its instance cannot run it)."""
    payload = json.dumps({"a": str(account_id), "s": secrets}, separators=(",", ":"))
    _script(_PUSH_BACK)(args=[_prefix(pool), prediction_id, str(account_id), payload])


def pool_length(pool: str) -> int:
    """Predictions queued in a pool (not yet taken by an instance)."""
    return int(cast(int, get_redis().hlen(_prefix(pool) + "q:jobs")))


def queue_length(version_id: str) -> int:
    """Queued predictions of a version's shared pool (deployments queue on their own pools;
    ``pool_length(deployment_pool(id))`` reads those)."""
    return pool_length(version_pool(version_id))


def queued_ids(pool: str) -> list[str]:
    """Every queued prediction id of a pool (unordered; for tools and tests)."""
    return sorted(
        as_text(k) for k in cast(list[bytes], get_redis().hkeys(_prefix(pool) + "q:jobs"))
    )


def queued_secrets(pool: str, prediction_id: str) -> str | None:
    raw = cast(bytes | None, get_redis().hget(_prefix(pool) + "q:jobs", prediction_id))
    return None if raw is None else json.loads(raw).get("s")


def queue_position(pool: str, prediction_id: str) -> int | None:
    """1-based place of a queued prediction in its pool's serving order, None if not queued."""
    raw = _script(_POSITION)(args=[_prefix(pool), prediction_id])
    return int(raw) if raw else None


def remove_queued_prediction(pool: str, prediction_id: str) -> bool:
    """Take a queued prediction off its queue (cancel before start). True if it was queued."""
    return bool(_script(_REMOVE)(args=[_prefix(pool), prediction_id]))


def drain_pool(pool: str) -> list[str]:
    """Take every queued prediction id off a pool (its setup failed, or it is being deleted)."""
    conn = get_redis()
    prefix = _prefix(pool)
    ids = [as_text(k) for k in cast(list[bytes], conn.hkeys(prefix + "q:jobs"))]
    for prediction_id in ids:
        remove_queued_prediction(pool, prediction_id)
    return ids


# --- instances -------------------------------------------------------------------------------


def request_instances(pool: str, version_id: str, sku: str, count: int = 1) -> int:
    """Ask the hosts of ``sku`` for ``count`` more instances of the pool (counted as pending)."""
    conn = get_redis()
    for _ in range(count):
        request_id = uuid.uuid4().hex
        pipe = conn.pipeline(transaction=False)
        pipe.zadd(_prefix(pool) + "pending", {request_id: time.time() + _start_ttl()})
        pipe.sadd(POOLS_KEY, pool)
        pipe.execute()
        _send_request(pool, version_id, sku, request_id)
    return count


def _send_request(pool: str, version_id: str, sku: str, request_id: str) -> None:
    hardware_queue(sku).enqueue(
        START_INSTANCE,
        pool,
        version_id,
        sku,
        request_id,
        job_timeout=-1,
        result_ttl=0,
        failure_ttl=24 * 3600,
    )


def ensure_instance(pool: str, version_id: str, sku: str) -> bool:
    """Ask for an instance unless the pool has one live or on its way. True if asked."""
    request_id = uuid.uuid4().hex
    now = time.time()
    asked = _script(_ENSURE)(
        keys=[POOLS_KEY], args=[_prefix(pool), now, now + _start_ttl(), request_id, pool]
    )
    if asked:
        _send_request(pool, version_id, sku, request_id)
    return bool(asked)


def requeue_request(pool: str, version_id: str, sku: str, request_id: str) -> None:
    """Hand a taken request back for any host (this one had no room after all)."""
    conn = get_redis()
    pipe = conn.pipeline(transaction=True)
    pipe.zrem(_prefix(pool) + "booting", request_id)
    pipe.zadd(_prefix(pool) + "pending", {request_id: time.time() + _start_ttl()})
    pipe.execute()
    _send_request(pool, version_id, sku, request_id)


def take_request(pool: str, request_id: str) -> bool:
    """An agent takes a start request: pending → booting. False if it was withdrawn or expired."""
    now = time.time()
    return bool(_script(_TAKE)(args=[_prefix(pool), request_id, now, now + _start_ttl()]))


def setup_started(pool: str, request_id: str) -> None:
    """The Cog server is up and running the model's setup: booting → setup."""
    prefix = _prefix(pool)
    pipe = get_redis().pipeline(transaction=True)
    pipe.zrem(prefix + "booting", request_id)
    pipe.zadd(prefix + "setup", {request_id: time.time() + _start_ttl()})
    pipe.execute()


def register_instance(
    pool: str, instance_id: int, request_id: str = "", setup_seconds: float | None = None
) -> None:
    """The instance serves the pool (again: heartbeats call this to refresh the registration)."""
    prefix = _prefix(pool)
    pipe = get_redis().pipeline(transaction=True)
    pipe.zadd(prefix + "live", {str(instance_id): time.time() + registration_ttl()})
    pipe.sadd(POOLS_KEY, pool)
    if request_id:
        pipe.zrem(prefix + "booting", request_id)
        pipe.zrem(prefix + "setup", request_id)
        pipe.hdel(prefix + "requests", str(instance_id))
    if setup_seconds is not None:
        pipe.lpush(prefix + "setups", f"{setup_seconds:.3f}")
        pipe.ltrim(prefix + "setups", 0, SAMPLES - 1)
    pipe.execute()


def release_if_idle(pool: str, instance_id: int) -> bool:
    """Leave the pool (live → draining) unless work is queued or the pool is at its floor."""
    now = time.time()
    return bool(
        _script(_RELEASE)(args=[_prefix(pool), str(instance_id), now, now + registration_ttl()])
    )


def set_floor(pool: str, floor: int) -> None:
    """Live instances the pool keeps however idle (a deployment's ``min_instances``)."""
    get_redis().set(_prefix(pool) + "floor", floor, ex=60)


def start_draining(pool: str, instance_id: int) -> None:
    """Stop taking work (retired, recycled or crashed): live → draining."""
    prefix = _prefix(pool)
    pipe = get_redis().pipeline(transaction=True)
    pipe.zrem(prefix + "live", str(instance_id))
    pipe.zadd(prefix + "draining", {str(instance_id): time.time() + registration_ttl()})
    pipe.execute()


def bind_request(pool: str, instance_id: int, request_id: str) -> None:
    """Remember which start request an instance fulfils until it registers, so that writing
    the instance off (its host died during setup) also ends the request. Otherwise the request
    would count as "on its way" until it expires, and nothing would start a successor."""
    get_redis().hset(_prefix(pool) + "requests", str(instance_id), request_id)


def instance_gone(pool: str, instance_id: int, request_id: str = "") -> None:
    """Forget an instance that ended (or never started) everywhere in its pool."""
    prefix = _prefix(pool)
    conn = get_redis()
    if not request_id and instance_id:
        request_id = as_text(conn.hget(prefix + "requests", str(instance_id)) or b"")
    pipe = conn.pipeline(transaction=True)
    for key in ("live", "draining"):
        pipe.zrem(prefix + key, str(instance_id))
    if request_id:
        for key in ("pending", "booting", "setup"):
            pipe.zrem(prefix + key, request_id)
    pipe.hdel(prefix + "requests", str(instance_id))
    pipe.hdel(prefix + "busy", str(instance_id))
    pipe.srem(RETIRE_KEY, str(instance_id))
    pipe.execute()


def deregister_instance(pool: str, instance_id: int) -> None:
    instance_gone(pool, instance_id)


def live_count(pool: str) -> int:
    return int(cast(int, get_redis().zcount(_prefix(pool) + "live", time.time(), "+inf")))


def live_instance_count(version_id: str) -> int:
    """Live instances of a version's shared pool."""
    return live_count(version_pool(version_id))


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


def pool_states(pools: list[str]) -> dict[str, PoolState]:
    """Everything about these pools, in one pipelined round trip."""
    now = time.time()
    pipe = get_redis().pipeline(transaction=False)
    for pool in pools:
        prefix = _prefix(pool)
        pipe.hlen(prefix + "q:jobs")
        pipe.zrangebyscore(prefix + "live", now, "+inf")
        pipe.zcount(prefix + "pending", now, "+inf")
        pipe.zcount(prefix + "booting", now, "+inf")
        pipe.zcount(prefix + "setup", now, "+inf")
        pipe.zrangebyscore(prefix + "draining", now, "+inf")
        pipe.hgetall(prefix + "busy")
        pipe.lrange(prefix + "runs", 0, 19)
        pipe.lrange(prefix + "setups", 0, 9)
    results = pipe.execute()
    states = {}
    for index, pool in enumerate(pools):
        queued, live, pending, booting, setup, draining, busy, runs, setups = results[
            index * 9 : index * 9 + 9
        ]
        states[pool] = PoolState(
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
    return states


def active_pools() -> list[str]:
    return sorted(as_text(p) for p in cast(set[bytes], get_redis().smembers(POOLS_KEY)))


def forget_if_empty(pool: str) -> bool:
    return bool(_script(_FORGET)(keys=[POOLS_KEY], args=[_prefix(pool), time.time(), pool]))
