"""One prediction's exchange with its Cog server: send it, follow it, end it.

Two ways, by what the instance has seen of its model (``Pace``):

- **Followed** (the default): ``PUT /predictions/{id}``, ``Prefer: respond-async`` and a webhook
  to the agent's hook server, so that logs and iterator outputs arrive while it runs. Cog's
  webhooks carry cumulative logs and output and may arrive out of order: only growth becomes
  events. The terminal webhook ends the prediction.
- **Inline**, once the instance's last ``INLINE_AFTER`` predictions each took less than
  ``INLINE_BELOW_SECONDS`` on a coglet server, for outputs that are not iterators: the same PUT
  without a webhook, answered with the finished prediction. A webhook costs coglet about 4 ms per
  prediction, several times what a quick model takes, and there is nothing to follow live in a
  prediction that ends that soon. ``InlineWatch`` stops an inline prediction that must stop.

Either way a cancel, the caller's deadline or the platform's timeout asks Cog to stop first, and
a model that does not stop within ``CANCEL_GRACE_SECONDS`` costs its instance.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
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

logger = logging.getLogger(__name__)

Status = Prediction.Status

# How long Cog gets to acknowledge a cancel before the instance is recycled.
CANCEL_GRACE_SECONDS = 10.0
# Partial logs/output are written to the database at most this often (events go out at once).
PROGRESS_INTERVAL = 0.5
# How long a busy (409) or not-ready (503) answer from Cog is retried before the prediction fails.
BUSY_RETRY_SECONDS = 10.0
# A prediction goes inline once its instance's last INLINE_AFTER predictions each took less than
# INLINE_BELOW_SECONDS (Cog's predict_time); one that takes longer sends the next ones back to
# being followed.
INLINE_BELOW_SECONDS = 0.5
INLINE_AFTER = 3
# How often InlineWatch looks for inline predictions to stop, and how old one must be first.
WATCH_INTERVAL = 0.1


class Pace:
    """What an instance has seen of its model's run times: whether to go inline."""

    def __init__(self, *, inline_capable: bool):
        # coglet answers an inline prediction with uploaded file URLs and cancels it by id; the
        # legacy server would answer files as data URIs, so it stays followed.
        self.inline_capable = inline_capable
        self._quick = 0

    @property
    def inline(self) -> bool:
        return self.inline_capable and self._quick >= INLINE_AFTER

    def record(self, predict_time: Any) -> None:
        """Count one ended prediction; None (unknown, or stopped) counts as slow."""
        quick = isinstance(predict_time, int | float) and predict_time < INLINE_BELOW_SECONDS
        self._quick = self._quick + 1 if quick else 0


class CogRun:
    """Runs one claimed prediction on the supervisor's Cog server until it ends."""

    def __init__(self, supervisor: InstanceSupervisor, prediction: Prediction):
        self.supervisor = supervisor
        self.prediction = prediction

    def run(self, payload: dict[str, Any]) -> None:
        supervisor = self.supervisor
        pid = self.prediction.pk
        # The mailbox also admits the prediction's output file uploads, inline or not.
        mailbox = supervisor.agent.hooks.expect(pid, supervisor.token)
        watched = None
        if self._goes_inline():
            watched = supervisor.agent.inline_watch.add(self)
        try:
            try:
                answer = self._dispatch(payload, inline=watched is not None)
            except CogError as exc:
                prefix = "Input rejected by the model: " if exc.status_code == 422 else ""
                prediction_finish(pid, Outcome(Status.FAILED, error=f"{prefix}{exc}"))
                return
            except httpx.TransportError as exc:
                if watched is not None and watched.abandoned and watched.stop is not None:
                    # InlineWatch stopped the server of a model that ignored the cancel.
                    prediction_finish(pid, policy.cancel_unacknowledged(watched.stop, ""))
                    return
                time.sleep(0.2)  # let the supervisor notice a dead server and say why
                outcome = (
                    policy.server_exited(supervisor.exit_code)
                    if supervisor.dead.is_set()
                    else policy.server_unreachable(str(exc))
                )
                supervisor.recycle(outcome.error or "")
                prediction_finish(pid, outcome)
                return
            if watched is None:
                self._collect(mailbox)
                return
            assert answer is not None
            logs = answer.get("logs") or ""
            if logs:
                # Followers of the stream get the logs with the end, as they would have live.
                events.publish(pid, events.LOGS, {"text": logs})
            self._finish(answer, logs, watched.stop)
        finally:
            if watched is not None:
                supervisor.agent.inline_watch.remove(pid)
            supervisor.agent.hooks.release(pid)

    def _goes_inline(self) -> bool:
        supervisor = self.supervisor
        return (
            supervisor.pace.inline
            and not supervisor.training
            and not supervisor.version.is_iterator_output
        )

    def _dispatch(self, payload: dict[str, Any], *, inline: bool) -> dict[str, Any] | None:
        """Send the prediction to Cog, waiting out a slot that is still being released; inline,
        Cog's answer is the finished prediction.

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
                if inline:
                    return supervisor.client.predict_inline(pid, payload)
                supervisor.client.predict_async(
                    pid,
                    payload,
                    webhook=supervisor.webhook_url(pid),
                    events_filter=supervisor.webhook_events,
                    training=supervisor.training,
                )
                return None
            except CogError as exc:
                if (
                    not exc.retryable
                    or time.monotonic() + delay > deadline
                    or supervisor.dead.is_set()
                ):
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def stop_deadline(self) -> float:
        """When (monotonic) to stop it: the platform's timeout or the caller's deadline."""
        deadline = time.monotonic() + settings.PREDICTION_TIMEOUT
        if self.prediction.deadline is not None:
            remaining = (self.prediction.deadline - timezone.now()).total_seconds()
            deadline = min(deadline, time.monotonic() + remaining)
        return deadline

    def must_stop(self, now: float, deadline: float) -> Outcome | None:
        """What it must end as if it must stop now (``deadline``: ``stop_deadline()``)."""
        if events.cancel_requested(self.prediction.pk):
            return Outcome(Status.CANCELED)
        if now >= deadline and self.prediction.deadline is not None:
            return policy.deadline_passed()
        if now >= deadline:
            return policy.timed_out(settings.PREDICTION_TIMEOUT)
        return None

    def ask_cog_to_stop(self) -> None:
        client = self.supervisor.client
        if client is not None:
            with contextlib.suppress(httpx.TransportError):
                client.cancel(self.prediction.pk, training=self.supervisor.training)

    def _collect(self, mailbox: Mailbox) -> None:
        """Turn Cog's webhooks into events and, at the end, the terminal state."""
        supervisor = self.supervisor
        assert supervisor.client is not None
        pid = self.prediction.pk
        iterator = supervisor.version.is_iterator_output and not supervisor.training
        logs_seen, outputs_seen, last_persist = "", 0, time.monotonic()
        deadline = self.stop_deadline()
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
                stop = self.must_stop(now, deadline)
                if stop is not None:
                    stop_sent = now
                    self.ask_cog_to_stop()
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
        # One that had to be stopped tells nothing of how long the model takes: counted slow.
        stopped = stop is not None or status == Status.CANCELED
        self.supervisor.pace.record(None if stopped else metrics.get("predict_time"))
        prediction_finish(
            pid,
            Outcome(
                status,
                output=output,
                error=error,
                logs=(payload.get("logs") or logs),
                metrics=metrics,
            ),
            running=self.prediction,
        )


@dataclass
class Watched:
    run: CogRun
    deadline: float  # monotonic: the platform's timeout or the caller's deadline
    since: float = field(default_factory=time.monotonic)
    next_check: float = 0.0
    # Set when it was asked to stop: what it ends as, and when Cog was asked.
    stop: Outcome | None = None
    stop_sent: float = 0.0
    # The model ignored the stop for CANCEL_GRACE_SECONDS: its server was stopped.
    abandoned: bool = False


class InlineWatch:
    """Stops the inline predictions that must stop, as a followed prediction's own loop does:
    a cancel, the caller's deadline, the platform's timeout; a model that does not stop within
    ``CANCEL_GRACE_SECONDS`` has its server stopped, which ends the waiting request. One thread
    per agent, started with the first inline prediction; quick predictions end before it looks."""

    def __init__(self) -> None:
        self._runs: dict[str, Watched] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, run: CogRun) -> Watched:
        watched = Watched(run, run.stop_deadline())
        watched.next_check = watched.since + WATCH_INTERVAL
        with self._lock:
            self._runs[run.prediction.pk] = watched
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="inline-watch", daemon=True)
                self._thread.start()
        return watched

    def remove(self, prediction_id: str) -> None:
        with self._lock:
            self._runs.pop(prediction_id, None)

    def _loop(self) -> None:
        while True:
            time.sleep(WATCH_INTERVAL)
            with self._lock:
                runs = list(self._runs.values())
            for watched in runs:
                try:
                    self._look(watched, time.monotonic())
                except Exception:
                    logger.exception("inline watch: %s", watched.run.prediction.pk)

    @staticmethod
    def _look(watched: Watched, now: float) -> None:
        run = watched.run
        if watched.stop is None and now >= watched.next_check:
            watched.next_check = now + 0.25
            stop = run.must_stop(now, watched.deadline)
            if stop is not None:
                watched.stop, watched.stop_sent = stop, now
                run.ask_cog_to_stop()
        elif (
            watched.stop is not None
            and not watched.abandoned
            and now - watched.stop_sent > CANCEL_GRACE_SECONDS
        ):
            watched.abandoned = True
            supervisor = run.supervisor
            supervisor.recycle("the model did not acknowledge a cancel")
            running = supervisor.running
            if running is not None:
                running.stop(grace=0)
