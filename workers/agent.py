"""The host agent: attaches a machine, starts instances on request, heartbeats, cleans up.

``python manage.py agent`` runs one per host. It consumes the hardware queues (``hw:<sku>``) of
the hardware it has while it has room for another instance, starts each instance under an
:class:`~workers.runner.InstanceRunner`, serves its Cog servers' webhooks and uploads, and
refreshes its instances' registrations. On start it removes whatever a previous run of the same
host left behind and fails the predictions that run had in flight. It also runs the autoscaler
(``workers/autoscaler.py``), which acts in one agent at a time.
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
from contextvars import ContextVar

import redis
from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job

from marketplace.catalog.models import Hardware, Version
from marketplace.deployments import services as deployments
from marketplace.deployments.config import idle_timeout_of
from marketplace.deployments.models import Deployment, Host, Instance
from marketplace.predictions import reconcile
from marketplace.predictions.models import Prediction
from marketplace.predictions.services import Outcome, prediction_finish
from marketplace.redisconn import as_text, get_redis
from workers import queues
from workers.autoscaler import Autoscaler
from workers.hookserver import HookServer
from workers.runner import InstanceRunner
from workers.runtimes.base import Runtime

logger = logging.getLogger(__name__)

current_agent: ContextVar[Agent | None] = ContextVar("current_agent", default=None)


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
        index, uuid, name, memory = (c.strip() for c in row[:4])
        if wanted and index not in wanted and uuid not in wanted:
            continue
        gpus.append({"index": int(index), "uuid": uuid, "name": name, "memory_mb": int(memory)})
    return gpus


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
        self.runners: set[InstanceRunner] = set()
        self._runners_lock = threading.Lock()
        self.host: Host | None = None
        self.gpus = detect_gpus(gpus if gpus is not None else list(settings.AGENT_GPUS))
        self._beats = 0

    # --- lifecycle ---------------------------------------------------------------------------
    def run(self) -> None:
        self.host = self._register_host()
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
        try:
            self._control_loop()
        finally:
            self._shutdown()

    def stop(self) -> None:
        self.stopping.set()

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
        stale = list(
            Instance.objects.filter(host=self.host, state__in=Instance.LIVE).select_related(
                "hardware"
            )
        )
        # Stop the instances first, so that whoever sees an orphaned prediction fail also sees
        # the instance that ran it stopped.
        Instance.objects.filter(pk__in=[i.pk for i in stale]).update(
            state=Instance.State.STOPPED, stopped_at=timezone.now(), stop_reason="agent restarted"
        )
        for instance in stale:
            orphaned = Prediction.objects.filter(
                instance=instance, status=Prediction.Status.PROCESSING
            )
            for prediction_id in orphaned.values_list("pk", flat=True):
                prediction_finish(
                    prediction_id,
                    Outcome(
                        Prediction.Status.FAILED,
                        error="The host agent restarted while this prediction was running.",
                    ),
                )
            queues.instance_gone(_pool(instance), instance.pk)
        # The previous run may have taken start requests with it: ask again for queued work.
        for instance in stale:
            if queues.pool_length(_pool(instance)) > 0:
                queues.ensure_instance(_pool(instance), instance.version_id, instance.hardware.sku)

    def _shutdown(self) -> None:
        with self._runners_lock:
            runners = list(self.runners)
        for runner in runners:
            runner.stopping.set()
        for runner in runners:
            runner.join()
        if self.host is not None:
            # A clean stop: the host is down on purpose, nothing for the reconciler to write off.
            Host.objects.filter(pk=self.host.pk).update(down_at=timezone.now())
        self.hooks.stop()
        connection.close()

    # --- work --------------------------------------------------------------------------------
    def _control_loop(self) -> None:
        conn = get_redis()
        assert self.host is not None
        gpu_need = dict(
            Hardware.objects.filter(sku__in=self.hardware_skus).values_list("sku", "gpu_count")
        )
        while not self.stopping.is_set():
            if self.active_runner_count() >= self.max_instances:
                self.stopping.wait(0.1)
                continue
            # Only take start requests this host can serve now: GPUs are the scarce part.
            free = len(deployments.free_gpu_ids(self.host)) if self.host.gpus else 0
            keys = [
                queues.hardware_queue(sku).key
                for sku in self.hardware_skus
                if gpu_need.get(sku, 0) <= free
            ]
            if not keys:
                self.stopping.wait(0.2)
                continue
            try:
                item = conn.blpop(keys, timeout=1)
            except redis.RedisError:
                logger.exception("hardware queues unavailable")
                self.stopping.wait(1)
                continue
            if item is None:
                continue
            try:
                job = Job.fetch(as_text(item[1]), connection=conn)
            except NoSuchJobError:
                continue
            except redis.RedisError:
                # Lost with Redis: the reconciler asks again for versions that still wait.
                logger.exception("start request %s could not be read", as_text(item[1]))
                continue
            token = current_agent.set(self)
            try:
                close_old_connections()
                job.func(*job.args, **job.kwargs)
            except Exception:
                logger.exception("start request %s failed", job.id)
            finally:
                current_agent.reset(token)
                with contextlib.suppress(redis.RedisError, InvalidJobOperation):
                    job.delete()  # its hash may have gone with a Redis restart

    def start_instance(self, pool: str, version_id: str, sku: str, request_id: str) -> None:
        if not queues.take_request(pool, request_id):
            return  # withdrawn or expired: nobody counts on it any more
        try:
            self._start_instance(pool, version_id, sku, request_id)
        except Exception:
            # Otherwise the request would count as starting until it expires.
            queues.instance_gone(pool, 0, request_id)
            raise

    def _start_instance(self, pool: str, version_id: str, sku: str, request_id: str) -> None:
        deployment = None
        if pool.startswith("deployment:"):
            deployment = Deployment.objects.filter(pk=int(pool.split(":", 1)[1])).first()
            if deployment is None:
                queues.instance_gone(pool, 0, request_id)
                return
            version_id = deployment.version_id  # asked for before an update: run the current one
        version = Version.objects.select_related("model").filter(pk=version_id).first()
        if version is None or self.stopping.is_set():
            queues.instance_gone(pool, 0, request_id)
            return
        assert self.host is not None
        instance = deployments.instance_create(
            host=self.host,
            version=version,
            hardware=Hardware.objects.get(sku=sku),
            runtime=self.runtime.name,
            deployment=deployment,
        )
        if instance is None:
            # Another start took the GPUs meanwhile: hand the request back for any host.
            logger.info("no free GPUs for %s on %s; request requeued", sku, self.host_name)
            queues.requeue_request(pool, version_id, sku, request_id)
            self.stopping.wait(0.2)
            return
        # Whoever writes this instance off (a host write-off) can then also end its request.
        queues.bind_request(pool, instance.pk, request_id)
        runner = InstanceRunner(
            self,
            instance,
            version,
            pool=pool,
            request_id=request_id,
            idle_timeout=idle_timeout_of(deployment, version.model, self.idle_timeout),
        )
        with self._runners_lock:
            self.runners.add(runner)
        runner.start()

    def runner_ended(self, runner: InstanceRunner) -> None:
        with self._runners_lock:
            self.runners.discard(runner)

    def active_runner_count(self) -> int:
        with self._runners_lock:
            return len(self.runners)

    def _heartbeat_loop(self) -> None:
        while not self.stopping.wait(settings.AGENT_HEARTBEAT_SECONDS):
            try:
                assert self.host is not None
                Host.objects.filter(pk=self.host.pk).update(last_heartbeat_at=timezone.now())
                with self._runners_lock:
                    runners = list(self.runners)
                for runner in runners:
                    if runner.is_ready:
                        queues.register_instance(runner.pool, runner.instance.pk)
                    elif runner.is_draining:
                        # Still counted by the autoscaler until its last prediction ends.
                        queues.start_draining(runner.pool, runner.instance.pk)
                self._beats += 1
                if self._beats % 5 == 0:
                    # Any live agent writes off hosts whose agents went silent.
                    deployments.reconcile_down_hosts()
                # And one agent per period repairs stuck predictions (a Redis lock decides).
                reconcile.run_periodically()
            except Exception:
                logger.exception("heartbeat failed")
        connection.close()


def _pool(instance: Instance) -> str:
    return queues.pool_of(version_id=instance.version_id, deployment_id=instance.deployment_id)
