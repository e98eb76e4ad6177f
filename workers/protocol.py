"""One prediction's exchange with its Cog server: send it, follow it, end it.

The prediction goes to Cog with ``PUT /predictions/{id}``, ``Prefer: respond-async`` and a
webhook to the agent's hook server, so that logs and iterator outputs arrive while it runs.
Cog's webhooks carry cumulative logs and output and may arrive out of order: only growth becomes
events. The terminal webhook ends the prediction; a cancel, the caller's deadline or the
platform's timeout asks Cog to stop first, and a model that does not stop within
``CANCEL_GRACE_SECONDS`` costs its instance.
"""

from __future__ import annotations

import contextlib
import queue
import time
from typing import TYPE_CHECKING, Any

import httpx
from django.conf import settings
from django.utils import timezone

from marketplace.predictions import events, policy
from marketplace.predictions.models import Prediction
from marketplace.predictions.policy import Outcome
from marketplace.predictions.services import prediction_finish, prediction_progress
from workers.cog import CogError
from workers.outputs import persist_data_uris

if TYPE_CHECKING:
    from workers.hookserver import Mailbox
    from workers.supervisor import InstanceSupervisor

Status = Prediction.Status

# How long Cog gets to acknowledge a cancel before the instance is recycled.
CANCEL_GRACE_SECONDS = 10.0
# Partial logs/output are written to the database at most this often (events go out at once).
PROGRESS_INTERVAL = 0.5
# How long a busy (409) or not-ready (503) answer from Cog is retried before the prediction fails.
BUSY_RETRY_SECONDS = 10.0


class CogRun:
    """Runs one claimed prediction on the supervisor's Cog server until it ends."""

    def __init__(self, supervisor: InstanceSupervisor, prediction: Prediction):
        self.supervisor = supervisor
        self.prediction = prediction

    def run(self, payload: dict[str, Any]) -> None:
        supervisor = self.supervisor
        pid = self.prediction.pk
        mailbox = supervisor.agent.hooks.expect(pid, supervisor.token)
        try:
            try:
                self._dispatch(payload)
            except CogError as exc:
                prefix = "Input rejected by the model: " if exc.status_code == 422 else ""
                prediction_finish(pid, Outcome(Status.FAILED, error=f"{prefix}{exc}"))
                return
            except httpx.TransportError as exc:
                time.sleep(0.2)  # let the supervisor notice a dead server and say why
                outcome = (
                    policy.server_exited(supervisor.exit_code)
                    if supervisor.dead.is_set()
                    else policy.server_unreachable(str(exc))
                )
                supervisor.recycle(outcome.error or "")
                prediction_finish(pid, outcome)
                return
            self._collect(mailbox)
        finally:
            supervisor.agent.hooks.release(pid)

    def _dispatch(self, payload: dict[str, Any]) -> None:
        """Send the prediction to Cog, waiting out a slot that is still being released.

        Cog sends the terminal webhook of the previous prediction a moment before it frees that
        slot, so a prediction dispatched right after can meet a 409 (busy) for a few
        milliseconds.
        """
        supervisor = self.supervisor
        assert supervisor.client is not None
        pid = self.prediction.pk
        deadline = time.monotonic() + BUSY_RETRY_SECONDS
        delay = 0.001
        while True:
            try:
                supervisor.client.predict_async(
                    pid,
                    payload,
                    webhook=supervisor.webhook_url(pid),
                    events_filter=supervisor.webhook_events,
                    training=supervisor.training,
                )
                return
            except CogError as exc:
                if (
                    not exc.retryable
                    or time.monotonic() + delay > deadline
                    or supervisor.dead.is_set()
                ):
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def _stop_deadline(self) -> float:
        """When (monotonic) to stop it: the platform's timeout or the caller's deadline."""
        deadline = time.monotonic() + settings.PREDICTION_TIMEOUT
        if self.prediction.deadline is not None:
            remaining = (self.prediction.deadline - timezone.now()).total_seconds()
            deadline = min(deadline, time.monotonic() + remaining)
        return deadline

    def _collect(self, mailbox: Mailbox) -> None:
        """Turn Cog's webhooks into events and, at the end, the terminal state."""
        supervisor = self.supervisor
        assert supervisor.client is not None
        pid = self.prediction.pk
        iterator = supervisor.version.is_iterator_output and not supervisor.training
        logs_seen, outputs_seen, last_persist = "", 0, time.monotonic()
        deadline = self._stop_deadline()
        # Set when we asked Cog to stop: what the prediction ends as, and when we asked.
        stop: Outcome | None = None
        stop_sent = 0.0
        next_cancel_check = 0.0
        while True:
            try:
                payload: dict[str, Any] | None = mailbox.queue.get(timeout=0.1)
            except queue.Empty:
                payload = None
            if payload is not None:
                logs = payload.get("logs") or ""
                if len(logs) > len(logs_seen) and logs.startswith(logs_seen):
                    events.publish(pid, events.LOGS, {"text": logs[len(logs_seen) :]})
                    logs_seen = logs
                output = payload.get("output")
                if iterator and isinstance(output, list) and len(output) > outputs_seen:
                    for index in range(outputs_seen, len(output)):
                        events.publish(pid, events.OUTPUT, {"index": index, "chunk": output[index]})
                    outputs_seen = len(output)
                if payload.get("status") in Prediction.TERMINAL:
                    self._finish(payload, logs_seen, stop)
                    return
                if time.monotonic() - last_persist >= PROGRESS_INTERVAL:
                    prediction_progress(
                        pid,
                        logs=logs_seen,
                        output=output[:outputs_seen] if iterator and output else None,
                        webhook=bool(self.prediction.webhook),
                    )
                    last_persist = time.monotonic()
                continue
            now = time.monotonic()
            if supervisor.dead.is_set():
                tail = supervisor.running.logs(40) if supervisor.running else ""
                prediction_finish(pid, policy.server_exited(supervisor.exit_code, logs_seen + tail))
                return
            if stop is None and now >= next_cancel_check:
                next_cancel_check = now + 0.25
                if events.cancel_requested(pid):
                    stop = Outcome(Status.CANCELED)
                elif now >= deadline and self.prediction.deadline is not None:
                    stop = policy.deadline_passed()
                elif now >= deadline:
                    stop = policy.timed_out(settings.PREDICTION_TIMEOUT)
                if stop is not None:
                    stop_sent = now
                    with contextlib.suppress(httpx.TransportError):
                        supervisor.client.cancel(pid, training=supervisor.training)
            if stop is not None and now - stop_sent > CANCEL_GRACE_SECONDS:
                supervisor.recycle("the model did not acknowledge a cancel")
                prediction_finish(pid, policy.cancel_unacknowledged(stop, logs_seen))
                return

    def _finish(self, payload: dict[str, Any], logs: str, stop: Outcome | None) -> None:
        status = payload["status"]
        error = payload.get("error")
        if stop is not None and status != Status.SUCCEEDED:
            status, error = stop.status, stop.error
        if status == Status.FAILED and not error:
            error = "The model failed without an error message"
        if status != Status.FAILED:
            error = None
        output = payload.get("output")
        pid = self.prediction.pk
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
