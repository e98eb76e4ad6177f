"""The official Python client (replicate 1.0.7, unchanged but for the base URL) drives the
deployment endpoints of a live stack: uvicorn, a host agent with real Cog servers, the
autoscaler in that agent, and an RQ worker."""

from __future__ import annotations

from typing import Any

import pytest
import replicate
from replicate.exceptions import ReplicateError

from marketplace.predictions.models import Prediction
from tests.factories import FIXTURES, UserFactory, publish, token_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_the_python_client_creates_uses_updates_and_deletes_a_deployment(
    start_web: Any, start_agent: Any, start_worker: Any, user: Any
) -> None:
    v1 = publish(user, FIXTURES / "cog" / "sleepy", name="sleepy")
    v2 = publish(user, FIXTURES / "cog" / "sleepy_v2", name="sleepy")
    web = start_web()
    start_agent(max_instances=3, PUBLIC_URL=web.url)
    start_worker("--with-scheduler", "default", "webhooks")
    client = replicate.Client(api_token=token_for(user), base_url=web.url)

    created = client.deployments.create(
        name="sleepy-prod",
        model="alice/sleepy",
        version=v1.pk,
        hardware="cpu",
        min_instances=0,
        max_instances=2,
    )
    assert (created.owner, created.name) == ("alice", "sleepy-prod")
    assert created.current_release is not None
    assert created.current_release.number == 1
    assert created.current_release.configuration.max_instances == 2
    assert created.current_release.created_by.username == "alice"

    deployment = client.deployments.get("alice/sleepy-prod")
    assert deployment.current_release is not None
    assert deployment.current_release.version == v1.pk
    assert [d.name for d in client.deployments.list().results] == ["sleepy-prod"]

    prediction = deployment.predictions.create(input={"seconds": 0.2})
    assert prediction.status == "starting"
    prediction.wait()
    assert prediction.status == "succeeded" and prediction.output == "v1 slept 0.2"
    assert Prediction.objects.get(pk=prediction.id).deployment is not None

    updated = client.deployments.update("alice", "sleepy-prod", version=v2.pk, max_instances=1)
    assert updated.current_release is not None
    assert updated.current_release.number == 2
    assert updated.current_release.version == v2.pk
    assert updated.current_release.configuration.max_instances == 1
    second = client.deployments.predictions.create("alice/sleepy-prod", input={"seconds": 0.1})
    second.wait()
    assert second.status == "succeeded" and second.output == "v2 slept 0.1"

    # Someone else cannot see it, use it or delete it.
    bob = replicate.Client(api_token=token_for(UserFactory(username="bob")), base_url=web.url)
    with pytest.raises(ReplicateError) as refused:
        bob.deployments.get("alice/sleepy-prod")
    assert refused.value.status == 404
    with pytest.raises(ReplicateError):
        bob.deployments.delete("alice", "sleepy-prod")

    assert client.deployments.delete("alice", "sleepy-prod") is True
    with pytest.raises(ReplicateError) as gone:
        client.deployments.get("alice/sleepy-prod")
    assert gone.value.status == 404
