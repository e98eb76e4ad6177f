"""Scheduled jobs about predictions. Their dotted paths are stored in queued jobs: keep them.

(Predictions themselves are not RQ jobs: they queue on their pool, ``marketplace/scheduling``.)
"""

from __future__ import annotations


def expire_prediction(prediction_id: str) -> None:
    """Cancel-After passed: a prediction that never started ends canceled (scheduled job)."""
    from marketplace.predictions.deadlines import expire

    expire(prediction_id)
