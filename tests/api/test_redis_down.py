"""Redis down: a create answers 503 problem+json with Retry-After, and nothing is kept — not
when the rate limit is first to notice, nor when Redis goes between the insert and the queue."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from marketplace.billing.models import Reservation
from marketplace.predictions import services
from marketplace.predictions.models import Prediction
from marketplace.predictions.refusals import QueueUnavailable
from marketplace.redisconn import get_redis
from marketplace.scheduling import scripts
from tests.factories import publish
from tests.redisserver import RedisServer

pytestmark = pytest.mark.django_db(transaction=True)


def forget_clients() -> None:
    """The process's Redis client and the Lua scripts registered on it (both made once)."""
    get_redis.cache_clear()
    scripts.script.cache_clear()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """Point this process at a redis-server the test may kill."""
    server = RedisServer(tmp_path).start()
    forget_clients()
    with override_settings(REDIS_URL=server.url, REDIS_EMBEDDED=False):
        yield server
    forget_clients()
    if server.process and server.process.poll() is None:
        server.kill()


def test_a_create_while_redis_is_down_is_503_with_retry_after(
    api: APIClient, user: Any, own_redis: RedisServer
) -> None:
    version = publish(user, "hello")
    body = {"version": version.id, "input": {"text": "x"}}
    assert api.post("/v1/predictions", body, format="json").status_code == 201
    own_redis.kill()
    response = api.post("/v1/predictions", body, format="json")
    assert response.status_code == 503, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert response["Retry-After"] == "5"
    assert response.json()["status"] == 503 and "try again" in response.json()["detail"]
    assert Prediction.objects.count() == 1 and Reservation.objects.count() == 1
    # The model's own endpoint and Prefer: wait answer the same way.
    model_path = f"/v1/models/{version.model.owner.username}/{version.model.name}/predictions"
    response = api.post(model_path, {"input": {"text": "x"}}, format="json", HTTP_PREFER="wait")
    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert Prediction.objects.count() == 1


def test_redis_lost_between_the_insert_and_the_queue_keeps_nothing(
    user: Any, own_redis: RedisServer
) -> None:
    """The rate limit answered; then Redis went. The row, its hold and its file uses go again,
    since the caller is told to try again (keeping it would run the prediction twice)."""
    version = publish(user, "hello")
    own_redis.kill()
    with pytest.raises(QueueUnavailable):
        services.prediction_create(
            input={"text": "x"}, account=user.account, created_by=user, version=version
        )
    assert not Prediction.objects.exists()
    assert not Reservation.objects.exists()
