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
