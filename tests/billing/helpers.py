"""Drive predictions through the real services the way a runner does (claim, then finish)."""

from __future__ import annotations

from typing import Any

from marketplace.deployments.models import Host, Instance
from marketplace.predictions.models import Prediction
from marketplace.predictions.services import Outcome, prediction_claim, prediction_finish


def instance_for(prediction: Prediction) -> Instance:
    host, _ = Host.objects.get_or_create(name="billing-test-host")
    instance = Instance.objects.filter(host=host, version_id=prediction.version_id).first()
    return instance or Instance.objects.create(
        host=host,
        version_id=prediction.version_id,
        hardware_id=prediction.hardware_id,
        runtime="local",
    )


def run(
    prediction: Prediction,
    seconds: float,
    status: str = Prediction.Status.SUCCEEDED,
    output: Any = "ok",
) -> Prediction:
    """Claim the prediction and end it after ``seconds`` of (reported) predict time."""
    assert prediction_claim(prediction.id, instance_for(prediction).pk)
    assert prediction_finish(
        prediction.id,
        Outcome(
            status,
            output=output if status == Prediction.Status.SUCCEEDED else None,
            error=None if status != Prediction.Status.FAILED else "boom",
            metrics={"predict_time": seconds},
        ),
    )
    prediction.refresh_from_db()
    return prediction
