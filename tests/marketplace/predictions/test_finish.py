"""What a model writes (logs, errors, output) is stored even when it holds text PostgreSQL
refuses: NUL characters and lone surrogates are stored as U+FFFD, and the prediction ends as
the model said rather than with a database error."""

from __future__ import annotations

from typing import Any

import pytest

from marketplace.predictions.models import Prediction
from marketplace.predictions.policy import Outcome
from marketplace.predictions.services import (
    prediction_claim,
    prediction_create,
    prediction_finish,
    prediction_progress,
)
from tests.factories import publish

pytestmark = pytest.mark.django_db(transaction=True)

BAD = "before \x00 middle \ud800 after"


def test_a_models_unstorable_text_is_stored_repaired(user: Any) -> None:
    version = publish(user, "hello")
    prediction = prediction_create(
        version=version, input={"text": "x"}, account=user.account, created_by=user
    )
    assert prediction_claim(prediction.pk, None)  # type: ignore[arg-type]
    prediction_progress(prediction.pk, logs=BAD)
    assert Prediction.objects.get(pk=prediction.pk).logs == "before \ufffd middle \ufffd after"
    assert prediction_finish(
        prediction.pk, Outcome("failed", error=BAD, logs=BAD + "!", output=[BAD])
    )
    stored = Prediction.objects.get(pk=prediction.pk)
    assert stored.status == "failed"
    assert stored.error == "before \ufffd middle \ufffd after"
    assert stored.logs == "before \ufffd middle \ufffd after!"
    assert stored.output == ["before \ufffd middle \ufffd after"]


def _claimed_by_a_runner(user: Any) -> Prediction:
    """A prediction as a runner holds it after its claim: the row the claim returned (this one
    ran on no instance)."""
    version = publish(user, "hello")
    created = prediction_create(
        version=version, input={"text": "x"}, account=user.account, created_by=user
    )
    claimed = prediction_claim(created.pk, None)
    assert claimed is not None
    return claimed


def test_the_runners_end_writes_what_the_locked_read_would(user: Any) -> None:
    from marketplace.billing.models import Reservation, UsageEntry

    claimed = _claimed_by_a_runner(user)
    assert prediction_finish(
        claimed.pk,
        Outcome("succeeded", output="hello x", logs="hi\n", metrics={"predict_time": 0.25}),
        running=claimed,
    )
    stored = Prediction.objects.get(pk=claimed.pk)
    assert (stored.status, stored.output, stored.logs) == ("succeeded", "hello x", "hi\n")
    assert stored.completed_at is not None and stored.metrics["predict_time"] == 0.25
    entry = UsageEntry.objects.get(prediction=stored)
    assert stored.cost == entry.amount > 0
    assert not Reservation.objects.filter(prediction_id=stored.pk).exists()
    # The answer a waiting request gets is the one a read of the row gives.
    assert claimed.to_api(signed=False) == stored.to_api(signed=False)


def test_the_runners_end_loses_to_an_end_that_came_first_and_bills_once(user: Any) -> None:
    from marketplace.billing.models import UsageEntry

    claimed = _claimed_by_a_runner(user)
    # The reconciler (or a deadline) ended it while the model ran.
    assert prediction_finish(claimed.pk, Outcome("failed", error="written off"))
    assert not prediction_finish(
        claimed.pk,
        Outcome("succeeded", output="late", metrics={"predict_time": 0.1}),
        running=claimed,
    )
    stored = Prediction.objects.get(pk=claimed.pk)
    assert (stored.status, stored.error, stored.output) == ("failed", "written off", None)
    assert UsageEntry.objects.filter(prediction_id=claimed.pk).count() == 1


def test_the_runners_end_charges_the_price_of_now_not_of_when_its_instance_started(
    user: Any, settings: Any
) -> None:
    from decimal import Decimal

    from marketplace.catalog.models import Hardware

    settings.HOT_CACHE_SECONDS = 0
    claimed = _claimed_by_a_runner(user)
    Hardware.objects.filter(pk=claimed.hardware_id).update(price_per_second=Decimal("0.000100"))
    assert prediction_finish(
        claimed.pk, Outcome("succeeded", metrics={"predict_time": 2}), running=claimed
    )
    assert Prediction.objects.get(pk=claimed.pk).cost == Decimal("0.000200")
