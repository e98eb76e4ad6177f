"""Instance supervisors: one thread per Cog server, from start to stop.

An :class:`InstanceSupervisor` starts the server through the runtime, waits for READY, registers
the instance as live in its pool, runs one :class:`~workers.slot.Slot` per concurrency slot,
watches the server's process, and stops it when it has been idle for its idle timeout (scale to
zero), when it is evicted for another model, retired by the autoscaler, recycled after a fault,
when its server crashes, or when the agent shuts down. Setup failures follow
``predictions.policy``: only the model's own error fails the predictions waiting for it.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from marketplace.deployments.models import Instance
from marketplace.logcontext import prediction_context
from marketplace.predictions import policy
from marketplace.predictions.policy import StopCause
from marketplace.predictions.services import prediction_finish
from marketplace.scheduling import instances, pools, starts
from marketplace.scheduling.placement import Resident
from workers.cog import CogClient
from workers.protocol import Pace
from workers.runtimes.base import InstanceSpec, RunningInstance, RuntimeFailure
from workers.slot import Slot
from workers.weights import local_copy

if TYPE_CHECKING:
    from marketplace.catalog.models import Version
    from workers.agent import Agent

logger = logging.getLogger(__name__)

# How often a live instance checks whether the autoscaler retired it.
RETIRE_CHECK_SECONDS = 0.5
RETIRED = "retired: its deployment runs another release or wants fewer instances"
# Attempts at starting the server within one supervisor, for errors worth an immediate retry.
START_ATTEMPTS = 3


class InstanceSupervisor(threading.Thread):
    def __init__(
        self,
        agent: Agent,
        instance: Instance,
        version: Version,
        *,
        pool: str,
        request_id: str = "",
        idle_timeout: float | None = None,
    ):
        super().__init__(name=f"instance-{instance.pk}", daemon=True)
        self.agent = agent
        self.instance = instance
        self.version = version
        # The pool it serves and the start request it answers.
        self.pool = pool
        # A train-mode instance (``--x-mode train``): runs the trainings of its version's pool.
        self.training = instance.mode == "train"
        self.request_id = request_id
        self.sku = instance.hardware.sku
        self.token = secrets.token_urlsafe(24)
        self.stopping = threading.Event()
        self.dead = threading.Event()
        self.exit_reason = ""
        self.exit_code: int | None = None
        self.stop_cause = ""
        self.idle_timeout = agent.idle_timeout if idle_timeout is None else idle_timeout
        self.client: CogClient | None = None
        self.pace = Pace(inline_capable=False)
        self.running: RunningInstance | None = None
        self._busy = 0
        self._last_active = time.monotonic()
        self._ready_since: float | None = None
        self._lock = threading.Lock()
        # Whether a setup failure already decided the fate of the pool's waiting predictions.
        self._failed_waiting = False
        # The claim already announced "processing", so Cog's "start" webhook adds nothing; and
        # only iterators have outputs to stream before the end.
        self.webhook_events = ["logs", "completed"]
        if version.is_iterator_output and not self.training:
            self.webhook_events.insert(0, "output")

    # --- bookkeeping used by slots and the agent ---------------------------------------------
    def begin(self) -> None:
        with self._lock:
            self._busy += 1
            self._last_active = time.monotonic()

    def end(self) -> None:
        with self._lock:
            self._busy -= 1
            self._last_active = time.monotonic()

    def webhook_url(self, prediction_id: str) -> str:
        return f"{self.agent.callback_base}/hooks/{prediction_id}"

    @property
    def is_ready(self) -> bool:
        """Serving its pool: past setup (it has a client) and not on its way out."""
        return self.running is not None and self.client is not None and not self.stopping.is_set()

    @property
    def is_draining(self) -> bool:
        """On its way out but still finishing what it runs."""
        return self.running is not None and self.client is not None and self.stopping.is_set()

    @property
    def holds_slot(self) -> bool:
        """Counts against the host's instance slots: an evicted instance's slot already belongs
        to the instance that replaces it."""
        return self.stop_cause != StopCause.EVICTED

    def resident(self) -> Resident[InstanceSupervisor] | None:
        """This instance as placement sees it, if it is ready (only ready ones are evictable)."""
        if not self.is_ready or self._ready_since is None:
            return None
        now = time.monotonic()
        with self._lock:
            busy, last_active = self._busy > 0, self._last_active
        return Resident(
            ref=self,
            pool=self.pool,
            gpus=len(self.instance.gpu_device_ids),
            busy=busy,
            resident_for=now - self._ready_since,
            idle_for=now - last_active,
        )

    # --- ways out ----------------------------------------------------------------------------
    def _leave(self, cause: str, reason: str) -> None:
        self.stop_cause = self.stop_cause or cause
        self.exit_reason = self.exit_reason or reason
        self._mark(Instance.State.STOPPING)
        self.stopping.set()

    def recycle(self, reason: str) -> None:
        """Stop this instance after the current predictions (a wedged or untrustworthy server).

        Callers recycle *before* they fail the prediction that showed the problem, so whoever
        sees that prediction fail also sees its instance going away.
        """
        logger.warning("recycling instance %s: %s", self.instance.pk, reason)
        instances.start_draining(self.pool, self.instance.pk)
        self._leave(StopCause.RECYCLED, reason)

    def retire(self) -> None:
        """Replaced (a new release, or fewer instances wanted): finish what runs, then stop."""
        instances.start_draining(self.pool, self.instance.pk)
        self._leave(StopCause.RETIRED, RETIRED)

    def evict(self, for_pool: str) -> bool:
        """Leave to make room for ``for_pool`` — only if it still runs nothing and its pool keeps
        its floor (one atomic check). True if it is on its way out."""
        if not self.is_ready or not instances.evict(self.pool, self.instance.pk):
            return False
        logger.info("evicting instance %s to make room for %s", self.instance.pk, for_pool)
        self._leave(StopCause.EVICTED, f"evicted to make room for {for_pool}")
        return True

    def _mark(self, state: str, reason: str = "") -> None:
        """Record the instance's state; never moves an ended (stopped/failed) instance back."""
        fields: dict[str, Any] = {"state": state}
        if state in (Instance.State.STOPPED, Instance.State.FAILED):
            fields.update(
                stopped_at=timezone.now(), stop_reason=reason[:500], stop_cause=self.stop_cause
            )
        Instance.objects.filter(pk=self.instance.pk, state__in=Instance.LIVE).update(**fields)

    # --- lifecycle ---------------------------------------------------------------------------
    def run(self) -> None:
        try:
            self._run()
        except Exception:
            logger.exception("instance %s supervisor crashed", self.instance.pk)
        finally:
            connection.close()

    @property
    def slots(self) -> int:
        return 1 if self.training else self.version.concurrency

    def _spec(self) -> InstanceSpec:
        hardware = self.instance.hardware
        # A trained version's weights, copied from storage once per agent (RuntimeFailure).
        weights = str(local_copy(self.version.weights)) if self.version.weights else ""
        return InstanceSpec(
            instance_id=self.instance.pk,
            host_name=self.agent.host_name,
            version_id=self.version.pk,
            source_path=self.version.source_path,
            image=self.version.image,
            upload_url=f"{self.agent.callback_base}/upload/{self.token}/",
            env={
                "WEBHOOK_AUTH_TOKEN": self.token,
                "COG_THROTTLE_RESPONSE_INTERVAL": str(settings.COG_LOG_INTERVAL),
                "COG_SETUP_TIMEOUT": str(int(settings.INSTANCE_SETUP_TIMEOUT)),
                "COG_MAX_CONCURRENCY": str(self.slots),
            },
            gpu_device_ids=list(self.instance.gpu_device_ids),
            cpu_count=hardware.cpu_count,
            memory_gb=hardware.memory_gb,
            schema=self.version.schema,
            mode=self.instance.mode,
            weights_path=weights,
        )

    def _run(self) -> None:
        runtime = self.agent.runtime
        self.agent.hooks.add_token(self.token)
        final_state, reason = Instance.State.STOPPED, ""
        try:
            for attempt in range(START_ATTEMPTS):
                try:
                    with runtime.instance(self._spec()) as running:
                        self.running = running
                        starts.setup_started(self.pool, self.request_id)
                        health = runtime.wait_ready(running, settings.INSTANCE_SETUP_TIMEOUT)
                        self._serve(running, health)
                    if self.agent.stopping.is_set() and not self.stop_cause:
                        self.stop_cause, self.exit_reason = StopCause.AGENT_STOPPED, "agent stopped"
                    reason = self.exit_reason
                    if self.dead.is_set():
                        final_state = Instance.State.FAILED
                    break
                except RuntimeFailure as exc:
                    logger.warning("instance %s failed to start: %s", self.instance.pk, exc)
                    retry = not exc.permanent and attempt + 1 < START_ATTEMPTS
                    if retry and not self.agent.stopping.is_set():
                        continue
                    final_state, reason = Instance.State.FAILED, str(exc)
                    self._setup_did_not_finish(exc)
                    break
        finally:
            self.running = None
            self.client = None
            self.agent.hooks.remove_token(self.token)
            instances.gone(self.pool, self.instance.pk, self.request_id)
            # A crash or a failed setup already recorded the end, before failing predictions.
            self._mark(final_state, reason)
            self.agent.supervisor_ended(self)
            # Work that arrived while this instance was going away, or that its failed setup
            # left queued, must not wait for the next prediction (or the autoscaler's next
            # tick) to ask for an instance.
            if (
                not self._failed_waiting
                and not self.agent.stopping.is_set()
                and pools.length(self.pool) > 0
            ):
                starts.ensure(self.pool, self.version.pk, self.sku)

    def _serve(self, running: RunningInstance, health: dict[str, Any]) -> None:
        setup = health.get("setup") or {}
        # Kept on the object too: the answers its predictions end with show their setup time.
        self.instance.ready_at = timezone.now()
        Instance.objects.filter(pk=self.instance.pk).update(
            state=Instance.State.READY,
            ready_at=self.instance.ready_at,
            url=running.url,
            runtime_ref=running.ref,
            setup_logs=str(setup.get("logs") or "")[-20000:],
        )
        self.client = CogClient(running.url)
        self.pace = Pace(inline_capable=bool((health.get("version") or {}).get("coglet")))
        setup_seconds = (timezone.now() - self.instance.created_at).total_seconds()
        instances.register(self.pool, self.instance.pk, self.request_id, setup_seconds)
        self._ready_since = self._last_active = time.monotonic()
        slots = [Slot(self, i) for i in range(self.slots)]
        for slot in slots:
            slot.start()
        next_retire_check = 0.0
        try:
            while not self.stopping.is_set():
                code = running.exit_code()
                if code is not None:
                    self._crashed(code)
                    break
                if self._idle_expired() and self._release_if_queue_empty():
                    break
                if time.monotonic() >= next_retire_check:
                    next_retire_check = time.monotonic() + RETIRE_CHECK_SECONDS
                    if instances.is_retired(self.instance.pk):
                        self.retire()
                        break
                self.stopping.wait(0.1)
        finally:
            self.stopping.set()
            self._mark(Instance.State.STOPPING)
            for slot in slots:
                slot.join()
            self.client.close()

    def _crashed(self, code: int) -> None:
        self.exit_code = code
        self.stop_cause = StopCause.CRASHED
        self.exit_reason = policy.server_exit_reason(code)
        logger.warning("instance %s: %s", self.instance.pk, self.exit_reason)
        instances.start_draining(self.pool, self.instance.pk)
        # The instance is failed before any slot fails its prediction (on `dead`).
        self._mark(Instance.State.FAILED, self.exit_reason)
        self.dead.set()
        self.stopping.set()

    def _idle_expired(self) -> bool:
        with self._lock:
            return self._busy == 0 and time.monotonic() - self._last_active >= self.idle_timeout

    def _release_if_queue_empty(self) -> bool:
        # Leaving looks at the queue atomically (one Lua script); creators push first and look
        # for instances second, so a prediction arriving now is seen by one side or the other.
        if not instances.release_if_idle(self.pool, self.instance.pk):
            with self._lock:
                self._last_active = time.monotonic()
            return False
        self._leave(StopCause.IDLE, f"idle for {self.idle_timeout:g} s")
        return True

    def _setup_did_not_finish(self, exc: RuntimeFailure) -> None:
        """The server never became ready. The model's own error fails the predictions waiting
        for this pool (with the setup logs); a platform fault leaves them queued for a fresh
        instance, a bounded number of times in a row."""
        models_fault = policy.setup_is_models_fault(
            exit_code=exc.exit_code, models_fault=exc.models_fault
        )
        self.stop_cause = StopCause.SETUP_FAILED if models_fault else StopCause.SETUP_INTERRUPTED
        # The instance is failed first: whoever sees a prediction fail sees why, and where.
        Instance.objects.filter(pk=self.instance.pk).update(setup_logs=exc.logs.strip()[-20000:])
        self._mark(Instance.State.FAILED, str(exc))
        if models_fault:
            outcome = policy.setup_failed(str(exc), exc.logs)
        elif self.agent.stopping.is_set():
            return  # the agent is going away: another (or its next run) takes the work
        else:
            faults = instances.setup_fault(self.pool)
            logger.warning(
                "setup of instance %s interrupted (%d in a row): %s", self.instance.pk, faults, exc
            )
            if faults < policy.SETUP_ATTEMPTS:
                return
            instances.clear_setup_faults(self.pool)
            outcome = policy.cannot_start(faults, str(exc))
        self._failed_waiting = True
        for prediction_id in pools.drain(self.pool):
            with prediction_context(prediction_id):
                prediction_finish(prediction_id, outcome)
