"""Jobs on the per-version queues. Their dotted paths are stored in queued jobs: keep them."""

from __future__ import annotations

from workers.runner import current_slot


def run_prediction(prediction_id: str, sealed_secrets: str | None = None) -> None:
    """Run one prediction on the instance whose slot pulled this job."""
    slot = current_slot.get()
    if slot is None:
        raise RuntimeError(
            "run_prediction runs inside an instance slot of `manage.py agent`, "
            "not in a plain RQ worker"
        )
    slot.execute(prediction_id, sealed_secrets)


def expire_prediction(prediction_id: str) -> None:
    """Cancel-After passed: a prediction that never started ends canceled (scheduled job)."""
    from marketplace.predictions.deadlines import expire

    expire(prediction_id)
