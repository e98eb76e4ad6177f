"""The autoscaler: how many instances each pool should have, and asking hosts for the missing ones.

Every agent runs one in a thread; a Redis lease (``SET NX PX``, renewed by its holder) makes
exactly one of them act at a time, so several agents are safe and a dead leader is replaced
within ``LEASE_SECONDS``. Each tick (``AUTOSCALER_INTERVAL``, at most a second):

- **desired** per pool = ⌈(queued + in flight) / slots per instance⌉, at least the deployment's
  ``min_instances``, at most its ``max_instances`` (``VERSION_MAX_INSTANCES`` for a version's
  shared pool);
- **supply** = live + starting (requested, booting, in setup) + draining instances of the current
  version. Missing ones are requested from ``hw:<sku>``, no more than the free capacity of online
  hosts with that hardware (``Host.max_instances`` and free GPUs) minus requests not yet taken;
- a deployment's instances of an older version are retired (they finish in-flight work; queued
  work waits on the deployment's queue for the new version's instances), and live instances
  above ``max_instances`` are retired, idle ones first.

Scaling down is the instances' own business: one idle for its idle timeout leaves its pool unless
work is queued or the pool would drop below its floor (an atomic check in ``instances``).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import close_old_connections, connection
from django.db.models import Count, Q
from django.utils import timezone

from marketplace.catalog import runs
from marketplace.catalog.models import Hardware, Version
from marketplace.deployments.config import slots_needed
from marketplace.deployments.models import Deployment, Host, Instance
from marketplace.deployments.services import heartbeat_grace
from marketplace.redisconn import get_redis
from marketplace.scheduling import instances, pools, starts

logger = logging.getLogger(__name__)

LEASE_KEY = "mk:autoscaler:leader"
# The leader adds the runs counted in Redis to the models' run counts this often.
RUNS_FLUSH_SECONDS = 2.0
LEASE_SECONDS = 3.0
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) and 1 or 0
"""


@dataclass
class Target:
    """What one pool should run."""

    pool: str
    version: Version
    sku: str
    low: int
    high: int
    deployment_id: int | None = None


@dataclass
class Decision:
    pool: str
    desired: int
    supply: int
    requested: int
    retired: list[int]


class _Room:
    """Instances each hardware type's hosts could still start, looked up on first use."""

    def __init__(self, load: Callable[[], dict[str, int]]) -> None:
        self._load = load
        self._room: dict[str, int] | None = None

    def get(self, sku: str) -> int:
        if self._room is None:
            self._room = self._load()
        return self._room.get(sku, 0)

    def take(self, sku: str, count: int) -> None:
        assert self._room is not None
        self._room[sku] = self._room.get(sku, 0) - count


class Autoscaler:
    def __init__(self) -> None:
        self.identity = uuid.uuid4().hex
        self._renew = get_redis().register_script(_RENEW)
        self._next_flush = 0.0

    def is_leader(self) -> bool:
        lease_ms = int(LEASE_SECONDS * 1000)
        return bool(self._renew(keys=[LEASE_KEY], args=[self.identity, lease_ms]))

    def resign(self) -> None:
        conn = get_redis()
        if conn.get(LEASE_KEY) == self.identity.encode():
            conn.delete(LEASE_KEY)

    def run(self, stopping: threading.Event) -> None:
        """Tick until ``stopping`` is set; only the lease holder acts."""
        interval = min(1.0, settings.AUTOSCALER_INTERVAL)
        try:
            while not stopping.wait(interval):
                try:
                    if self.is_leader():
                        close_old_connections()
                        self.tick()
                except Exception:
                    logger.exception("autoscaler tick failed")
        finally:
            self.resign()
            connection.close()

    # --- one tick ----------------------------------------------------------------------------
    def targets(self, active: list[str]) -> dict[str, Target]:
        targets: dict[str, Target] = {}
        for deployment in Deployment.objects.select_related("version", "hardware"):
            pool = pools.deployment_pool(deployment.pk)
            targets[pool] = Target(
                pool,
                deployment.version,
                deployment.hardware.sku,
                deployment.min_instances,
                deployment.max_instances,
                deployment.pk,
            )
        # A version's shared pool and its trainings' pool (train-mode instances) scale alike.
        shared = {p.partition(":")[2]: p for p in active if p.startswith("version:")}
        training = {p.partition(":")[2]: p for p in active if pools.is_training(p)}
        for version in (
            Version.objects.filter(pk__in=set(shared) | set(training))
            .select_related("model__default_hardware")
            .defer("openapi_schema")
        ):
            sku = version.model.default_hardware.sku
            for name in (shared.get(version.pk), training.get(version.pk)):
                if name is not None:
                    targets[name] = Target(name, version, sku, 0, settings.VERSION_MAX_INSTANCES)
        return targets

    def capacity(self, pending_by_sku: dict[str, int]) -> dict[str, int]:
        """Instances that online hosts could still start, per SKU, after requests not yet taken."""
        cutoff = timezone.now() - heartbeat_grace()
        hosts = list(
            Host.objects.filter(down_at__isnull=True, last_heartbeat_at__gte=cutoff)
            .annotate(live=Count("instances", filter=Q(instances__state__in=Instance.LIVE)))
            .prefetch_related("hardware")
        )
        used_gpus: dict[int, set[str]] = defaultdict(set)
        for host_id, ids in Instance.objects.filter(
            host__in=hosts, state__in=Instance.LIVE
        ).values_list("host_id", "gpu_device_ids"):
            used_gpus[host_id].update(str(i) for i in ids or [])
        gpu_need = dict(Hardware.objects.values_list("sku", "gpu_count"))
        room: dict[str, int] = defaultdict(int)
        for host in hosts:
            free_slots = max(0, host.max_instances - host.live)
            free_gpus = len([d for d in host.gpu_device_ids if d not in used_gpus[host.pk]])
            for hardware in host.hardware.all():
                need = gpu_need.get(hardware.sku, 0)
                fits = free_slots if not need else min(free_slots, free_gpus // need)
                room[hardware.sku] += fits
        return {sku: room[sku] - pending_by_sku.get(sku, 0) for sku in room}

    def tick(self) -> list[Decision]:
        if time.monotonic() >= self._next_flush:
            self._next_flush = time.monotonic() + RUNS_FLUSH_SECONDS
            runs.flush()
        active = pools.active()
        targets = self.targets(active)
        names = sorted(set(active) | set(targets))
        states = instances.states(names)
        version_of: dict[int, str] = {}
        if any(t.deployment_id is not None for t in targets.values()):
            version_of = dict(
                Instance.objects.filter(
                    state__in=Instance.LIVE, deployment__isnull=False
                ).values_list("pk", "version_id")
            )
        pending_by_sku: dict[str, int] = defaultdict(int)
        for name in names:
            if name in targets:
                pending_by_sku[targets[name].sku] += states[name].pending
        room = _Room(lambda: self.capacity(pending_by_sku))
        decisions = []
        for name in names:
            state, target = states[name], targets.get(name)
            if target is None:
                pools.forget_if_empty(name)
                continue
            decisions.append(self._scale(target, state, version_of, room))
            if target.deployment_id is None:
                pools.forget_if_empty(name)
        return decisions

    def _scale(
        self,
        target: Target,
        state: instances.PoolState,
        version_of: dict[int, str],
        room: _Room,
    ) -> Decision:
        current = target.version.pk

        def is_current(instance_id: int) -> bool:
            return version_of.get(instance_id, current) == current

        live = [i for i in state.live if is_current(i)]
        old = [i for i in state.live if not is_current(i)]
        # A new release: the old one finishes what it runs and goes; queued work waits for the
        # new one (runners also hand back what they pop after the change, see Slot.execute).
        retired = list(old)
        excess: list[int] = []
        if len(live) > target.high:
            excess = sorted(live, key=lambda i: state.busy.get(i, 0))[: len(live) - target.high]
        retired += excess
        instances.retire(retired)
        if target.deployment_id is not None:
            instances.set_floor(target.pool, target.low)
        demand = state.queued + state.in_flight
        desired = max(
            target.low,
            min(
                target.high,
                slots_needed(
                    demand, 1 if pools.is_training(target.pool) else target.version.concurrency
                ),
            ),
        )
        draining = [i for i in state.draining if is_current(i)]
        supply = len(live) - len(excess) + state.starting + len(draining)
        missing = max(0, desired - supply)
        # What hosts could still start is only looked up when some pool lacks instances.
        allowed = min(missing, max(0, room.get(target.sku))) if missing else 0
        if allowed:
            starts.request(target.pool, current, target.sku, allowed)
            room.take(target.sku, allowed)
            logger.info(
                "%s: %d queued, %d in flight → %d wanted, %d present: asked for %d",
                target.pool,
                state.queued,
                state.in_flight,
                desired,
                supply,
                allowed,
            )
        return Decision(target.pool, desired, supply, allowed, retired)
