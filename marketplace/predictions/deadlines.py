"""``Cancel-After``: a prediction still queued at its deadline ends canceled without starting.

A job scheduled for the deadline (``lifetimes.schedule_expiry``, on the ``default`` queue;
workers run with the RQ scheduler) covers predictions no instance ever picks up; runners check
the deadline again when they pop the job, and cancel a running prediction when it passes
(``workers/protocol.py``). Either way the outcome is ``policy.deadline_passed``.
"""

from __future__ import annotations

from marketplace.logcontext import prediction_context
from marketplace.predictions import policy
from marketplace.predictions.models import Prediction
from marketplace.predictions.services import prediction_finish
from marketplace.scheduling import pools


def expire(prediction_id: str) -> bool:
    """End the prediction as canceled if it has not started. True if it did."""
    with prediction_context(prediction_id):
        prediction = (
            Prediction.objects.filter(pk=prediction_id)
            .only("version_id", "deployment_id", "status", "kind")
            .first()
        )
        if prediction is None or prediction.status != Prediction.Status.STARTING:
            return False
        pools.remove(pools.pool_of_prediction(prediction), prediction_id)
        # Loses to a runner that claimed it meanwhile; the runner then cancels it at the deadline.
        return prediction_finish(prediction_id, policy.deadline_passed())
