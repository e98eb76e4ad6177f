"""What each fault means for the predictions it touches: one decision and one message per fault.

The runner (slots and instance supervisors), the agent, the reconciler, deadlines and host
write-offs all end predictions through these outcomes, so the same fault reads the same wherever
it is noticed. The rule behind them: **a platform fault never fails a prediction that had not
started.** Work still queued when an instance dies, a host goes down or a model server is killed
during setup stays queued and runs on a fresh instance; only a setup that fails by the model's
own error (an exception in ``setup()``, a non-zero exit) fails the predictions waiting on it,
with its logs. Predictions already running on an instance that is lost fail, saying why.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from typing import Any

from django.db import models

from marketplace.predictions.models import Prediction

Status = Prediction.Status

# Setups of one pool that may fail by a platform fault in a row before its waiting predictions
# are failed after all (a model whose server is killed every time it starts would wait forever).
SETUP_ATTEMPTS = 3


@dataclass(frozen=True)
class Outcome:
    """How a prediction ends: what ``prediction_finish`` records."""

    status: str
    output: Any = None
    error: str | None = None
    logs: str | None = None
    metrics: dict[str, Any] | None = None


class StopCause(models.TextChoices):
    """Why an instance stopped (``Instance.stop_cause``; counted in ``/metrics``)."""

    IDLE = "idle", "idle for its timeout"
    EVICTED = "evicted", "evicted to make room for another model"
    RETIRED = "retired", "retired by its deployment"
    RECYCLED = "recycled", "recycled after a fault"
    CRASHED = "crashed", "its model server exited"
    SETUP_FAILED = "setup_failed", "the model's setup failed"
    SETUP_INTERRUPTED = "setup_interrupted", "its setup was interrupted"
    AGENT_STOPPED = "agent_stopped", "its agent stopped"
    AGENT_RESTARTED = "agent_restarted", "its agent restarted"
    HOST_DOWN = "host_down", "its host stopped responding"


# --- predictions that were running ---------------------------------------------------------
def deadline_passed() -> Outcome:
    """``Cancel-After`` passed: Replicate cancels rather than fails (whether it had started or
    not; one that had not is never billed)."""
    return Outcome(Status.CANCELED)


def timed_out(timeout: float) -> Outcome:
    return Outcome(Status.FAILED, error=f"Prediction exceeded the timeout of {timeout:g} s")


def server_exited(code: int | None, logs: str | None = None) -> Outcome:
    return Outcome(Status.FAILED, error=f"{server_exit_reason(code)}.", logs=logs or None)


def server_exit_reason(code: int | None) -> str:
    return f"The model server stopped unexpectedly (exit code {code})"


def server_unreachable(detail: str) -> Outcome:
    return Outcome(Status.FAILED, error=f"The model server could not be reached: {detail}")


def agent_restarted() -> Outcome:
    return Outcome(
        Status.FAILED, error="The host agent restarted while this prediction was running."
    )


def host_down(host: str, last_seen: str) -> Outcome:
    return Outcome(
        Status.FAILED,
        error=(
            f"The host {host} running this prediction stopped responding (last heartbeat "
            f"{last_seen}); the prediction was lost. Create it again."
        ),
    )


def instance_lost(reason: str | None) -> Outcome:
    """The instance it ran on ended (why: ``reason``) or vanished (None), and nothing will
    report the prediction's end."""
    if reason is None:
        return Outcome(
            Status.FAILED,
            error="The instance running this prediction is gone; the prediction was lost. "
            "Create it again.",
        )
    return Outcome(
        Status.FAILED,
        error=(
            f"The instance running this prediction ended ({reason}) before the prediction "
            "finished; it was lost. Create it again."
        ),
    )


def cancel_unacknowledged(stop: Outcome, logs: str) -> Outcome:
    """Asked to stop (cancel, deadline, timeout), the model did not within the grace period."""
    return Outcome(stop.status, error=stop.error, logs=logs)


# --- predictions that had not started --------------------------------------------------------
def is_signal_exit(code: int | None) -> bool:
    """Killed rather than exited: a negative code (a subprocess killed by a signal) or 128 + a
    signal number (a container's process killed by one)."""
    if code is None:
        return False
    return code < 0 or 128 < code <= 128 + max(signal.valid_signals())


def setup_is_models_fault(*, exit_code: int | None, models_fault: bool) -> bool:
    """Whether a setup that did not reach READY failed by the model's own error: ``setup()``
    raised (Cog reports SETUP_FAILED), the version can never run (its image or directory is
    gone: ``models_fault``), or the server exited with a non-zero code of its own. Everything
    else — killed by a signal, a host or agent going away, a start error, a setup that outran
    its timeout — is the platform's, and never fails waiting predictions at once."""
    if models_fault:
        return True
    return exit_code is not None and exit_code != 0 and not is_signal_exit(exit_code)


def setup_failed(message: str, logs: str) -> Outcome:
    """The model's setup failed by its own error: the predictions waiting for it fail with the
    setup logs (another instance would fail the same way)."""
    logs = logs.strip()
    return Outcome(Status.FAILED, error=f"{message}." + (f"\n\n{logs[-4000:]}" if logs else ""))


def cannot_start(attempts: int, reason: str) -> Outcome:
    """Setups of this model kept failing for platform reasons: stop retrying, saying so."""
    return Outcome(
        Status.FAILED,
        error=(
            f"No instance of this model could be started after {attempts} attempts (last: "
            f"{reason}). Try again later."
        ),
    )


def secrets_lost(names: list[str]) -> Outcome:
    return Outcome(
        Status.FAILED,
        error=(
            f"The secret inputs {', '.join(names)} are no longer available; create the "
            "prediction again."
        ),
    )
