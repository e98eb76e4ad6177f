"""The host agent: attaches a machine, starts instances on request, heartbeats, cleans up.

``python manage.py agent`` runs one per host. The agent is an RQ worker (:class:`HostWorker`) of
the hardware queues ``hw:<sku>`` of the hardware it has, and takes a start request only while it
has room for one more instance — a free instance slot and enough free GPUs, or idle instances of
other models it may evict for it (``marketplace.scheduling.placement``). Each instance runs under
an :class:`~workers.supervisor.InstanceSupervisor`. The agent also serves its Cog servers'
webhooks and uploads, refreshes its instances' registrations, reports its room, and runs the
autoscaler, which acts in one agent at a time. On start it removes whatever a previous run of
the same host left behind and writes off the instances that run had.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import os
import shutil
import subprocess
import threading
import time
import uuid
from contextvars import ContextVar
from typing import Any

import redis
from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone
from rq.exceptions import DequeueTimeout, StopRequested
from rq.job import Job
from rq.queue import Queue
from rq.worker import SimpleWorker

from marketplace.catalog.models import Hardware, Version
from marketplace.deployments import services as deployments
from marketplace.deployments.config import idle_timeout_of
from marketplace.deployments.models import Deployment, Host, Instance
from marketplace.predictions import policy, reconcile
from marketplace.predictions.policy import StopCause
from marketplace.redisconn import get_redis
from marketplace.scheduling import instances, placement, pools, starts
from marketplace.scheduling.autoscaler import Autoscaler
from workers.hookserver import HookServer
from workers.protocol import InlineWatch
from workers.runtimes.base import Runtime
from workers.supervisor import InstanceSupervisor

logger = logging.getLogger(__name__)

current_agent: ContextVar[Agent | None] = ContextVar("current_agent", default=None)

# While it has no room, the agent looks again this often (room appears when an instance stops,
# becomes idle, or passes its minimum residency).
ROOM_POLL_SECONDS = 0.1
# A host's room report stays valid this long without a refresh.
ROOM_TTL_SECONDS = 5.0
# After handing a request back for lack of room, how long before listening again.
HAND_BACK_PAUSE_SECONDS = 0.5
# How long a start waits for the instances it evicted to stop and free their slot and GPUs.
EVICTION_WAIT_SECONDS = 60.0


def runtime_for(name: str) -> Runtime:
    if name == "local":
        from workers.runtimes.local import LocalRuntime

        return LocalRuntime()
    if name == "docker":
        from workers.runtimes.docker import DockerRuntime

        return DockerRuntime()
    raise ValueError(f"Unknown runtime {name!r} (available: local, docker)")


def detect_gpus(wanted: list[str] | None = None) -> list[dict[str, object]]:
    """The GPUs this agent may hand out: from ``nvidia-smi`` when present, else from ``wanted``.

    ``wanted`` (``--gpus 0,1``) restricts nvidia-smi's list to those indices or UUIDs; without
    nvidia-smi it is the inventory itself (device ids passed to Docker as given).
    """
    wanted = [w.strip() for w in wanted or [] if w.strip()]
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return [
            {"index": int(w), "uuid": ""} if w.isdigit() else {"index": None, "uuid": w}
            for w in wanted
        ]
    out = subprocess.run(
        [smi, "--query-gpu=index,uuid,name,memory.total", "--format=csv,noheader,nounits"],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout  # fmt: skip
    gpus: list[dict[str, object]] = []
    for row in csv.reader(io.StringIO(out)):
        if len(row) < 4:
            continue
        index, uuid_, name, memory = (c.strip() for c in row[:4])
        if wanted and index not in wanted and uuid_ not in wanted:
            continue
        gpus.append({"index": int(index), "uuid": uuid_, "name": name, "memory_mb": int(memory)})
    return gpus


class HostWorker(SimpleWorker):
    """The agent as an RQ worker of its hardware queues. It runs start requests in its own
    process (they start threads that outlive the job) and dequeues only while the host has room
    for another instance; otherwise requests wait in the queue for a host that has."""

    def __init__(self, agent: Agent):
        super().__init__(
            [starts.hardware_queue(sku) for sku in agent.hardware_skus],
            connection=get_redis(),
            name=f"agent-{agent.host_name}-{uuid.uuid4().hex[:8]}",
        )
        self.agent = agent

    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[Job, Queue] | None:
        while not self.agent.stopping.is_set():
            if not self.agent.has_room():
                self.agent.stopping.wait(ROOM_POLL_SECONDS)
                continue
            # Listen a second at a time, so that room lost meanwhile (an idle instance got work)
            # or the agent stopping is noticed.
            result = super().dequeue_job_and_maintain_ttl(1, max_idle_time=1)
            if result is not None:
                return result
        raise StopRequested()

    def request_stop(self, signum: Any, frame: Any) -> None:
        self.agent.stop()
        super().request_stop(signum, frame)


class Agent:
    def __init__(
        self,
        *,
        runtime: Runtime | None = None,
        host_name: str | None = None,
        hardware: list[str] | None = None,
        max_instances: int | None = None,
        idle_timeout: float | None = None,
        gpus: list[str] | None = None,
    ):
        self.runtime = runtime or runtime_for(settings.AGENT_RUNTIME)
        self.host_name = host_name or settings.AGENT_HOST_NAME
        self.hardware_skus = hardware or list(settings.AGENT_HARDWARE)
        self.max_instances = max_instances or settings.AGENT_MAX_INSTANCES
        self.idle_timeout = settings.INSTANCE_IDLE_TIMEOUT if idle_timeout is None else idle_timeout
        self.stopping = threading.Event()
        self.hooks = HookServer(settings.AGENT_LISTEN_HOST, settings.AGENT_LISTEN_PORT)
        self.callback_base = f"http://{settings.AGENT_CALLBACK_HOST}:{self.hooks.port}"
        self.inline_watch = InlineWatch()
        self.supervisors: set[InstanceSupervisor] = set()
        self._lock = threading.Lock()
        self.host: Host | None = None
        self.gpus = detect_gpus(gpus if gpus is not None else list(settings.AGENT_GPUS))
        self.gpu_need: dict[str, int] = {}
        self._room_reported: tuple[dict[str, int], float] = ({}, 0.0)
        self._beats = 0

    # --- lifecycle ---------------------------------------------------------------------------
    def run(self) -> None:
        self.host = self._register_host()
        self.gpu_need = dict(
            Hardware.objects.filter(sku__in=self.hardware_skus).values_list("sku", "gpu_count")
        )
        self._clean_up_previous_run()
        self.hooks.start()
        heartbeat = threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True)
        heartbeat.start()
        autoscaler = threading.Thread(
            target=Autoscaler().run, args=(self.stopping,), name="autoscaler", daemon=True
        )
        autoscaler.start()
        logger.info(
            "agent %s ready: runtime=%s hardware=%s gpus=%s max_instances=%s callbacks=%s",
            self.host_name,
            self.runtime.name,
            ",".join(self.hardware_skus),
            ",".join(self.host.gpu_device_ids) or "none",
            self.max_instances,
            self.callback_base,
        )
        token = current_agent.set(self)
        try:
            self._work()
        finally:
            current_agent.reset(token)
            self._shutdown()

    def stop(self) -> None:
        self.stopping.set()

    def _work(self) -> None:
        """Work the hardware queues until stopped. RQ's loop ends on an error it does not handle
        (Redis going away at the wrong moment): start it again."""
        try:
            while not self.stopping.is_set():
                try:
                    HostWorker(self).work(with_scheduler=False)
                except (redis.RedisError, DequeueTimeout, ValueError):
                    logger.warning("hardware queues unavailable; trying again", exc_info=True)
                if not self.stopping.is_set():
                    self.stopping.wait(1)
        except StopRequested:
            pass  # a signal between two runs of RQ's loop (its handlers stay installed)

    def _register_host(self) -> Host:
        host, _ = Host.objects.update_or_create(
            name=self.host_name,
            defaults={
                "runtime": self.runtime.name,
                "max_instances": self.max_instances,
                "agent_pid": os.getpid(),
                "started_at": timezone.now(),
                "last_heartbeat_at": timezone.now(),
                "gpus": self.gpus,
                "down_at": None,
            },
        )
        host.hardware.set(Hardware.objects.filter(sku__in=self.hardware_skus))
        missing = set(self.hardware_skus) - set(host.hardware.values_list("sku", flat=True))
        if missing:
            raise ValueError(f"Unknown hardware SKUs: {', '.join(sorted(missing))}")
        return host

    def _clean_up_previous_run(self) -> None:
        removed = self.runtime.cleanup_leftovers(self.host_name)
        if removed:
            logger.warning(
                "removed %d instance(s) left by a previous run: %s", len(removed), removed
            )
        stale = Instance.objects.filter(host=self.host, state__in=Instance.LIVE).select_related(
            "hardware"
        )
        for instance in stale:
            deployments.instance_write_off(
                instance,
                cause=StopCause.AGENT_RESTARTED,
                reason="agent restarted",
                outcome=policy.agent_restarted(),
            )

    def _shutdown(self) -> None:
        with self._lock:
            supervisors = list(self.supervisors)
        for supervisor in supervisors:
            supervisor.stopping.set()
        for supervisor in supervisors:
            supervisor.join()
        if self.host is not None:
            # A clean stop: the host is down on purpose, nothing for the reconciler to write off.
            Host.objects.filter(pk=self.host.pk).update(down_at=timezone.now())
            with contextlib.suppress(redis.RedisError):
                placement.withdraw_room(self.host_name, self.hardware_skus)
        self.hooks.stop()
        connection.close()

    # --- room --------------------------------------------------------------------------------
    def _snapshot(
        self,
    ) -> tuple[int, int, list[placement.Resident[InstanceSupervisor]], set[str]]:
        """Free instance slots, free GPUs, the ready instances that hold a slot, GPUs in use."""
        with self._lock:
            supervisors = [s for s in self.supervisors if s.is_alive()]
        holders = [s for s in supervisors if s.holds_slot]
        used = {str(d) for s in supervisors for d in s.instance.gpu_device_ids}
        assert self.host is not None
        free_gpus = len([d for d in self.host.gpu_device_ids if d not in used])
        residents = [r for s in holders if (r := s.resident()) is not None]
        # A deployment's min_instances keeps its instances: they are never candidates.
        floors = sorted({r.pool for r in residents if r.pool.startswith("deployment:")})
        kept = instances.at_floor(floors) if floors else set()
        residents = [r for r in residents if r.pool not in kept]
        return self.max_instances - len(holders), free_gpus, residents, used

    def room(self) -> dict[str, int]:
        """Instances of each of this host's hardware types it could start now, evicting as
        needed."""
        free_slots, free_gpus, residents, _ = self._snapshot()
        candidates = placement.evictable(
            residents, for_pool="", min_residency=settings.INSTANCE_MIN_RESIDENCY
        )
        return {
            sku: placement.room(
                candidates,
                free_slots=free_slots,
                free_gpus=free_gpus,
                gpus_needed=self.gpu_need.get(sku, 0),
            )
            for sku in self.hardware_skus
        }

    def has_room(self) -> bool:
        """Whether to take a start request now: room for every hardware type this host serves
        (a request is taken before its type is known). Reports the room on the way."""
        room = self.room()
        self._report(room)
        return all(count > 0 for count in room.values())

    def _report(self, room: dict[str, int], force: bool = False) -> None:
        last, at = self._room_reported
        if not force and room == last and time.monotonic() - at < ROOM_TTL_SECONDS / 2:
            return
        try:
            placement.report_room(self.host_name, room, ROOM_TTL_SECONDS)
            self._room_reported = (room, time.monotonic())
        except redis.RedisError:
            logger.warning("could not report room", exc_info=True)

    def _make_room(self, pool: str, gpus_needed: int) -> list[InstanceSupervisor] | None:
        """Evict what must go for one more instance of ``pool``; None if nothing may go."""
        for _ in range(3):
            free_slots, free_gpus, residents, _ = self._snapshot()
            candidates = placement.evictable(
                residents, for_pool=pool, min_residency=settings.INSTANCE_MIN_RESIDENCY
            )
            victims = placement.choose_victims(
                candidates, free_slots=free_slots, free_gpus=free_gpus, gpus_needed=gpus_needed
            )
            if victims is None:
                return None
            evicted = [v.ref for v in victims if v.ref.evict(pool)]
            if len(evicted) == len(victims):
                return evicted
            # One got work between the choice and the eviction: choose again.
        return None

    # --- work --------------------------------------------------------------------------------
    def start_instance(self, pool: str, version_id: str, sku: str, request_id: str) -> None:
        if not starts.take(pool, request_id):
            return  # withdrawn or expired: nobody counts on it any more
        try:
            self._start_instance(pool, version_id, sku, request_id)
        except Exception:
            # Otherwise the request would count as starting until it expires.
            instances.gone(pool, 0, request_id)
            raise

    def _start_instance(self, pool: str, version_id: str, sku: str, request_id: str) -> None:
        close_old_connections()
        deployment = None
        if pool.startswith("deployment:"):
            deployment = Deployment.objects.filter(pk=int(pool.split(":", 1)[1])).first()
            if deployment is None:
                instances.gone(pool, 0, request_id)
                return
            version_id = deployment.version_id  # asked for before an update: run the current one
        version = Version.objects.select_related("model").filter(pk=version_id).first()
        if version is None or self.stopping.is_set():
            instances.gone(pool, 0, request_id)
            return
        assert self.host is not None
        hardware = Hardware.objects.get(sku=sku)
        evicted = self._make_room(pool, hardware.gpu_count)
        if evicted is None:
            # The room it had when it took the request is gone: back to the front of the queue,
            # and a pause before this host listens again.
            logger.info("no room for %s on %s; request handed back", pool, self.host_name)
            starts.hand_back(pool, version_id, sku, request_id)
            self.stopping.wait(HAND_BACK_PAUSE_SECONDS)
            return
        for victim in evicted:
            victim.join(EVICTION_WAIT_SECONDS)
        instance = deployments.instance_create(
            host=self.host,
            version=version,
            hardware=hardware,
            runtime=self.runtime.name,
            deployment=deployment,
            mode="train" if pools.is_training(pool) else "predict",
        )
        if instance is None:
            # Another start took the GPUs meanwhile: hand the request back for any host.
            logger.info("no free GPUs for %s on %s; request handed back", sku, self.host_name)
            starts.hand_back(pool, version_id, sku, request_id)
            return
        if evicted:
            Instance.objects.filter(pk__in=[v.instance.pk for v in evicted]).update(
                replaced_by=instance
            )
        # Whoever writes this instance off (a host write-off) can then also end its request.
        instances.bind_request(pool, instance.pk, request_id)
        supervisor = InstanceSupervisor(
            self,
            instance,
            version,
            pool=pool,
            request_id=request_id,
            idle_timeout=idle_timeout_of(deployment, version.model, self.idle_timeout),
        )
        with self._lock:
            self.supervisors.add(supervisor)
        supervisor.start()

    def supervisor_ended(self, supervisor: InstanceSupervisor) -> None:
        with self._lock:
            self.supervisors.discard(supervisor)

    def _heartbeat_loop(self) -> None:
        while not self.stopping.wait(settings.AGENT_HEARTBEAT_SECONDS):
            try:
                assert self.host is not None
                Host.objects.filter(pk=self.host.pk).update(last_heartbeat_at=timezone.now())
                with self._lock:
                    supervisors = list(self.supervisors)
                for supervisor in supervisors:
                    if supervisor.is_ready:
                        instances.refresh(supervisor.pool, supervisor.instance.pk)
                    elif supervisor.is_draining:
                        # Still counted by the autoscaler until its last prediction ends.
                        instances.start_draining(supervisor.pool, supervisor.instance.pk)
                self._report(self.room(), force=True)
                self._beats += 1
                if self._beats % 5 == 0:
                    # Any live agent writes off hosts whose agents went silent.
                    deployments.reconcile_down_hosts()
                # And one agent per period repairs stuck predictions (a Redis lock decides).
                reconcile.run_periodically()
            except Exception:
                logger.exception("heartbeat failed")
        connection.close()
