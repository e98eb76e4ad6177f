"""Instance supervisors and their slots: predictions run on one live Cog server.

An :class:`InstanceRunner` owns one Cog server for one version: it starts it through the runtime,
waits for READY, publishes it as live, runs one :class:`Slot` per concurrency slot, watches the
server's process, and stops it when it has been idle for the idle timeout (scale to zero), when
it crashes, when the autoscaler retires it, or when the agent shuts down. Slots pull predictions
from its pool's queue (``workers/queues.py``): the version's shared pool, or its deployment's.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import secrets
import threading
import time
from typing import TYPE_CHECKING, Any

import httpx
import redis
from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from marketplace.catalog.schema import REDACTED
from marketplace.deployments.models import Deployment, Instance
from marketplace.files.access import resolve_for_model
from marketplace.logcontext import prediction_context
from marketplace.predictions import events, outbound
from marketplace.predictions.models import Prediction
from marketplace.predictions.secrets import unseal
from marketplace.predictions.services import (
    Outcome,
    prediction_claim,
    prediction_finish,
    prediction_progress,
)
from workers import queues
from workers.cog import CogClient, CogError
from workers.outputs import persist_data_uris
from workers.runtimes.base import InstanceSpec, RunningInstance, RuntimeFailure

if TYPE_CHECKING:
    from marketplace.catalog.models import Version
    from workers.agent import Agent
    from workers.hookserver import Mailbox

logger = logging.getLogger(__name__)

Status = Prediction.Status

# How long Cog gets to acknowledge a cancel before the instance is recycled.
CANCEL_GRACE_SECONDS = 10.0
# Partial logs/output are written to the database at most this often (events go out at once).
PROGRESS_INTERVAL = 0.5
DEQUEUE_TIMEOUT = 1
# How often a live instance checks whether the autoscaler retired it, and the reason it gives.
RETIRE_CHECK_SECONDS = 0.5
RETIRED = "retired: its deployment runs another release or wants fewer instances"
# How long a busy (409) or not-ready (503) answer from Cog is retried before the prediction fails.
BUSY_RETRY_SECONDS = 10.0


class InstanceRunner(threading.Thread):
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
        self.request_id = request_id
        self.sku = instance.hardware.sku
        self.token = secrets.token_urlsafe(24)
        self.stopping = threading.Event()
        self.dead = threading.Event()
        self.exit_reason = ""
        self.idle_timeout = agent.idle_timeout if idle_timeout is None else idle_timeout
        self.client: CogClient | None = None
        self.running: RunningInstance | None = None
        self._busy = 0
        self._last_active = time.monotonic()
        self._lock = threading.Lock()
        self._setup_failed = False
        # The claim already announced "processing", so Cog's "start" webhook adds nothing; and
        # only iterators have outputs to stream before the end.
        self.webhook_events = ["logs", "completed"]
        if version.is_iterator_output:
            self.webhook_events.insert(0, "output")

    # --- bookkeeping used by slots -----------------------------------------------------------
    def begin(self) -> None:
        with self._lock:
            self._busy += 1
            self._last_active = time.monotonic()

    def end(self) -> None:
        with self._lock:
            self._busy -= 1
            self._last_active = time.monotonic()

    def recycle(self, reason: str) -> None:
        """Stop this instance after the current predictions (a wedged or untrustworthy server).

        Callers recycle *before* they fail the prediction that showed the problem, so whoever
        sees that prediction fail also sees its instance going away.
        """
        logger.warning("recycling instance %s: %s", self.instance.pk, reason)
        self.exit_reason = reason
        queues.start_draining(self.pool, self.instance.pk)
        self._mark(Instance.State.STOPPING)
        self.stopping.set()

    def _mark(self, state: str, reason: str = "") -> None:
        """Record the instance's state; never moves an ended (stopped/failed) instance back."""
        fields: dict[str, Any] = {"state": state}
        if state in (Instance.State.STOPPED, Instance.State.FAILED):
            fields.update(stopped_at=timezone.now(), stop_reason=reason[:500])
        Instance.objects.filter(pk=self.instance.pk, state__in=Instance.LIVE).update(**fields)

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

    # --- lifecycle ---------------------------------------------------------------------------
    def run(self) -> None:
        try:
            self._run()
        except Exception:
            logger.exception("instance %s supervisor crashed", self.instance.pk)
        finally:
            connection.close()

    def _spec(self) -> InstanceSpec:
        hardware = self.instance.hardware
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
                "COG_MAX_CONCURRENCY": str(self.version.concurrency),
            },
            gpu_device_ids=list(self.instance.gpu_device_ids),
            cpu_count=hardware.cpu_count,
            memory_gb=hardware.memory_gb,
            schema=self.version.schema,
        )

    def _run(self) -> None:
        runtime = self.agent.runtime
        self.agent.hooks.add_token(self.token)
        final_state, reason = Instance.State.STOPPED, ""
        try:
            for attempt in range(3):
                try:
                    with runtime.instance(self._spec()) as running:
                        self.running = running
                        queues.setup_started(self.pool, self.request_id)
                        health = runtime.wait_ready(running, settings.INSTANCE_SETUP_TIMEOUT)
                        self._serve(running, health)
                    reason = "agent stopped" if self.agent.stopping.is_set() else self.exit_reason
                    if self.dead.is_set():
                        final_state = Instance.State.FAILED
                    break
                except RuntimeFailure as exc:
                    logger.warning("instance %s failed to start: %s", self.instance.pk, exc)
                    if exc.permanent or attempt == 2 or self.agent.stopping.is_set():
                        final_state, reason = Instance.State.FAILED, str(exc)
                        self._fail_setup(exc)
                        break
        finally:
            self.running = None
            self.client = None
            self.agent.hooks.remove_token(self.token)
            queues.instance_gone(self.pool, self.instance.pk, self.request_id)
            # A crash or a failed setup already recorded the end, before failing predictions.
            self._mark(final_state, reason)
            self.agent.runner_ended(self)
            # Work that arrived while this instance was going away must not wait for the next
            # prediction (or the autoscaler's next tick) to ask for an instance.
            if (
                not self._setup_failed
                and not self.agent.stopping.is_set()
                and queues.pool_length(self.pool) > 0
            ):
                queues.ensure_instance(self.pool, self.version.pk, self.sku)

    def _serve(self, running: RunningInstance, health: dict[str, Any]) -> None:
        setup = health.get("setup") or {}
        Instance.objects.filter(pk=self.instance.pk).update(
            state=Instance.State.READY,
            ready_at=timezone.now(),
            url=running.url,
            runtime_ref=running.ref,
            setup_logs=str(setup.get("logs") or "")[-20000:],
        )
        self.client = CogClient(running.url)
        setup_seconds = (timezone.now() - self.instance.created_at).total_seconds()
        queues.register_instance(self.pool, self.instance.pk, self.request_id, setup_seconds)
        self._last_active = time.monotonic()
        slots = [Slot(self, i) for i in range(self.version.concurrency)]
        for slot in slots:
            slot.start()
        next_retire_check = 0.0
        try:
            while not self.stopping.is_set():
                code = running.exit_code()
                if code is not None:
                    self.exit_reason = f"The model server stopped unexpectedly (exit code {code})"
                    logger.warning("instance %s: %s", self.instance.pk, self.exit_reason)
                    queues.start_draining(self.pool, self.instance.pk)
                    # The instance is failed before any slot fails its prediction (on `dead`).
                    self._mark(Instance.State.FAILED, self.exit_reason)
                    self.dead.set()
                    self.recycle(self.exit_reason)
                    break
                if self._idle_expired() and self._release_if_queue_empty():
                    break
                if time.monotonic() >= next_retire_check:
                    next_retire_check = time.monotonic() + RETIRE_CHECK_SECONDS
                    if queues.is_retired(self.instance.pk):
                        # Replaced (a new release, or fewer instances wanted): finish what runs.
                        queues.start_draining(self.pool, self.instance.pk)
                        self.exit_reason = RETIRED
                        break
                self.stopping.wait(0.1)
        finally:
            self.stopping.set()
            self._mark(Instance.State.STOPPING)
            for slot in slots:
                slot.join()
            self.client.close()

    def _idle_expired(self) -> bool:
        with self._lock:
            return self._busy == 0 and time.monotonic() - self._last_active >= self.idle_timeout

    def _release_if_queue_empty(self) -> bool:
        # Leaving looks at the queue atomically (one Lua script); creators push first and look
        # for instances second, so a prediction arriving now is seen by one side or the other.
        if not queues.release_if_idle(self.pool, self.instance.pk):
            with self._lock:
                self._last_active = time.monotonic()
            return False
        self.exit_reason = f"idle for {self.idle_timeout:g} s"
        self.stopping.set()
        return True

    def _fail_setup(self, exc: RuntimeFailure) -> None:
        """Setup can't succeed: fail the predictions waiting for this version, with its logs."""
        self._setup_failed = True
        logs = exc.logs.strip()
        error = f"{exc}." + (f"\n\n{logs[-4000:]}" if logs else "")
        # The instance is failed first: whoever sees a prediction fail sees why, and where.
        Instance.objects.filter(pk=self.instance.pk).update(setup_logs=logs[-20000:])
        self._mark(Instance.State.FAILED, str(exc))
        for prediction_id in queues.drain_pool(self.pool):
            with prediction_context(prediction_id):
                prediction_finish(prediction_id, Outcome(Status.FAILED, error=error))


class Slot(threading.Thread):
    """One concurrency slot: pulls a prediction from the pool's queue and runs it."""

    def __init__(self, runner: InstanceRunner, index: int):
        super().__init__(name=f"instance-{runner.instance.pk}-slot-{index}", daemon=True)
        self.runner = runner
        # Whether the prediction being performed was claimed (ran, or tried to, on Cog).
        self.claimed = False

    def run(self) -> None:
        runner = self.runner
        pool, instance_id = runner.pool, runner.instance.pk
        try:
            while not runner.stopping.is_set():
                try:
                    # Take queued work directly (one round trip); block on a wake-up token only
                    # when there is none.
                    popped = queues.pop(pool, instance_id)
                    if popped is None:
                        if not queues.wait_for_work(pool, DEQUEUE_TIMEOUT):
                            continue
                        popped = queues.pop(pool, instance_id, token_taken=True)
                except redis.RedisError:
                    logger.exception("slot %s: queue unavailable", self.name)
                    runner.stopping.wait(1)
                    continue
                if popped is None:
                    continue
                try:
                    self._perform(popped)
                except Exception:
                    # A slot outlives any one prediction: a dead slot would leave its instance
                    # registered and serving nothing. A prediction lost here is the reconciler's.
                    logger.exception(
                        "slot %s: %s failed outside the prediction", self.name, popped.prediction_id
                    )
        finally:
            connection.close()

    def _perform(self, popped: queues.Popped) -> None:
        self.runner.begin()
        self.claimed = False
        began = time.monotonic()
        try:
            with prediction_context(popped.prediction_id):
                try:
                    close_old_connections()
                    self.execute(popped.prediction_id, popped.secrets)
                except Exception as exc:
                    logger.exception("prediction %s crashed its runner", popped.prediction_id)
                    prediction_finish(
                        popped.prediction_id,
                        Outcome(Status.FAILED, error=f"Internal error while running: {exc}"),
                    )
        finally:
            self.runner.end()
            ran = time.monotonic() - began if self.claimed else None
            queues.finished_one(self.runner.pool, self.runner.instance.pk, ran)
            # Hand the database connection back to the pool between predictions: an idle slot
            # holding one would make an agent need a connection per slot of every instance.
            connection.close()

    # --- one prediction ----------------------------------------------------------------------
    def execute(self, prediction_id: str, sealed_secrets: str | None) -> None:
        runner = self.runner
        prediction = Prediction.objects.filter(pk=prediction_id).first()
        if prediction is None or prediction.status != Status.STARTING:
            return  # canceled while queued, or already taken
        if prediction.deadline is not None and prediction.deadline <= timezone.now():
            # Cancel-After passed while it waited: it never starts (and is not billed).
            prediction_finish(prediction_id, Outcome(Status.CANCELED))
            return
        if prediction.deployment_id is not None and self._superseded(prediction, sealed_secrets):
            return
        # A deployment's queued work runs on its current release, whichever it was created on.
        version_id = runner.version.pk if prediction.version_id != runner.version.pk else None
        if not prediction_claim(prediction_id, runner.instance.pk, version_id=version_id):
            return
        self.claimed = True
        try:
            # Only what the prediction's account owns is signed for the model.
            payload = resolve_for_model(
                {**prediction.input, **unseal(sealed_secrets)},
                account_id=prediction.account_id,
                openapi=runner.version.schema,
            )
        except ValueError as exc:
            prediction_finish(prediction_id, Outcome(Status.FAILED, error=str(exc)))
            return
        if refused := outbound.check_dispatch(runner.version.schema, payload):
            prediction_finish(prediction_id, Outcome(Status.FAILED, error=refused))
            return
        lost = sorted(k for k in runner.version.secret_fields() if payload.get(k) == REDACTED)
        if lost:
            error = (
                f"The secret inputs {', '.join(lost)} are no longer available; "
                "create the prediction again."
            )
            prediction_finish(prediction_id, Outcome(Status.FAILED, error=error))
            return
        assert runner.client is not None
        logger.info("running on instance %s", runner.instance.pk)
        mailbox = runner.agent.hooks.expect(prediction_id, runner.token)
        try:
            try:
                self._dispatch(prediction_id, payload)
            except CogError as exc:
                prefix = "Input rejected by the model: " if exc.status_code == 422 else ""
                prediction_finish(prediction_id, Outcome(Status.FAILED, error=f"{prefix}{exc}"))
                return
            except httpx.TransportError as exc:
                time.sleep(0.2)  # let the supervisor notice a dead server and say why
                error = runner.exit_reason or f"The model server could not be reached: {exc}"
                runner.recycle(error)
                prediction_finish(prediction_id, Outcome(Status.FAILED, error=error))
                return
            self._collect(prediction, mailbox)
        finally:
            runner.agent.hooks.release(prediction_id)

    def _superseded(self, prediction: Prediction, sealed_secrets: str | None) -> bool:
        """A deployment moved to another version: hand the prediction back (to the front of its
        account's turn) for the new release, and stop taking work here."""
        assert prediction.deployment_id is not None
        current = (
            Deployment.objects.filter(pk=prediction.deployment_id)
            .values_list("version_id", flat=True)
            .first()
        )
        if current is None or current == self.runner.version.pk:
            return False
        queues.push_back(self.runner.pool, prediction.pk, prediction.account_id, sealed_secrets)
        self.runner.recycle(RETIRED)
        return True

    def _dispatch(self, prediction_id: str, payload: dict[str, Any]) -> None:
        """Send the prediction to Cog, waiting out a slot that is still being released.

        Cog sends the terminal webhook of the previous prediction a moment before it frees that
        slot, so a prediction dispatched right after can meet a 409 (busy) for a few
        milliseconds.
        """
        runner = self.runner
        assert runner.client is not None
        deadline = time.monotonic() + BUSY_RETRY_SECONDS
        delay = 0.001
        while True:
            try:
                runner.client.predict_async(
                    prediction_id,
                    payload,
                    webhook=runner.webhook_url(prediction_id),
                    events_filter=runner.webhook_events,
                )
                return
            except CogError as exc:
                if not exc.retryable or time.monotonic() + delay > deadline or runner.dead.is_set():
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def _collect(self, prediction: Prediction, mailbox: Mailbox) -> None:
        """Turn Cog's webhooks into events and, at the end, the terminal state."""
        runner = self.runner
        assert runner.client is not None
        pid = prediction.pk
        iterator = runner.version.is_iterator_output
        logs_seen, outputs_seen, last_persist = "", 0, time.monotonic()
        deadline = time.monotonic() + settings.PREDICTION_TIMEOUT
        if prediction.deadline is not None:
            deadline = min(
                deadline, time.monotonic() + (prediction.deadline - timezone.now()).total_seconds()
            )
        # Set when we asked Cog to stop: what the prediction ends as, and when we asked.
        stop_outcome: Outcome | None = None
        stop_sent = 0.0
        next_cancel_check = 0.0
        while True:
            try:
                payload: dict[str, Any] | None = mailbox.queue.get(timeout=0.1)
            except queue.Empty:
                payload = None
            if payload is not None:
                logs = payload.get("logs") or ""
                # Webhooks carry cumulative logs and output and may arrive out of order: only
                # growth counts.
                if len(logs) > len(logs_seen) and logs.startswith(logs_seen):
                    events.publish(pid, events.LOGS, {"text": logs[len(logs_seen) :]})
                    logs_seen = logs
                output = payload.get("output")
                if iterator and isinstance(output, list) and len(output) > outputs_seen:
                    for index in range(outputs_seen, len(output)):
                        events.publish(pid, events.OUTPUT, {"index": index, "chunk": output[index]})
                    outputs_seen = len(output)
                status = payload.get("status")
                if status in Prediction.TERMINAL:
                    self._finish(pid, payload, logs_seen, stop_outcome)
                    return
                if time.monotonic() - last_persist >= PROGRESS_INTERVAL:
                    prediction_progress(
                        pid,
                        logs=logs_seen,
                        output=output[:outputs_seen] if iterator and output else None,
                    )
                    last_persist = time.monotonic()
                continue
            now = time.monotonic()
            if runner.dead.is_set():
                tail = runner.running.logs(40) if runner.running else ""
                prediction_finish(
                    pid,
                    Outcome(
                        Status.FAILED,
                        error=f"{runner.exit_reason}.",
                        logs=(logs_seen + tail) or None,
                    ),
                )
                return
            if stop_outcome is None and now >= next_cancel_check:
                next_cancel_check = now + 0.25
                if events.cancel_requested(pid):
                    stop_outcome = Outcome(Status.CANCELED)
                elif now >= deadline and prediction.deadline is not None:
                    # The caller's own deadline: Replicate cancels rather than fails.
                    stop_outcome = Outcome(Status.CANCELED)
                elif now >= deadline:
                    timeout = settings.PREDICTION_TIMEOUT
                    error = f"Prediction exceeded the timeout of {timeout} s"
                    stop_outcome = Outcome(Status.FAILED, error=error)
                if stop_outcome is not None:
                    stop_sent = now
                    with contextlib.suppress(httpx.TransportError):
                        runner.client.cancel(pid)
            if stop_outcome is not None and now - stop_sent > CANCEL_GRACE_SECONDS:
                runner.recycle("the model did not acknowledge a cancel")
                prediction_finish(
                    pid, Outcome(stop_outcome.status, error=stop_outcome.error, logs=logs_seen)
                )
                return

    def _finish(self, pid: str, payload: dict[str, Any], logs: str, stop: Outcome | None) -> None:
        status = payload["status"]
        error = payload.get("error")
        if stop is not None and status != Status.SUCCEEDED:
            status, error = stop.status, stop.error
        if status == Status.FAILED and not error:
            error = "The model failed without an error message"
        if status != Status.FAILED:
            error = None
        output = payload.get("output")
        if output is not None:
            output = persist_data_uris(pid, output)
        metrics = {
            k: v for k, v in (payload.get("metrics") or {}).items() if isinstance(v, int | float)
        }
        prediction_finish(
            pid,
            Outcome(
                status,
                output=output,
                error=error,
                logs=(payload.get("logs") or logs),
                metrics=metrics,
            ),
        )
