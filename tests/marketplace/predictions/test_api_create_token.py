from __future__ import annotations

from typing import Any

from marketplace.predictions.models import Prediction
from tests.factories import publish


def test_the_token_used_is_recorded_on_the_prediction(api: Any, user: Any) -> None:
    version = publish(user, "hello", "hello")
    response = api.post(
        "/v1/predictions", {"version": version.id, "input": {"text": "x"}}, format="json"
    )
    assert response.status_code == 201, response.content
    prediction = Prediction.objects.get(pk=response.json()["id"])
    assert prediction.created_by_token is not None
    assert prediction.created_by_token.user == user
