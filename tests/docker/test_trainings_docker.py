"""A trainable image pushed to the registry trains in a container (the same image in Cog's train
mode) and its trained version runs in a container with the weights mounted read-only.

Everything is real: dockerd, docker-registry with token auth, an agent with the Docker runtime.
"""

from __future__ import annotations

from typing import Any

import docker
import pytest

from marketplace.catalog.models import Version
from marketplace.deployments.models import Instance
from marketplace.predictions.models import Prediction
from marketplace.registry.models import ImagePush
from tests.conftest import wait_for
from tests.factories import token_for

pytestmark = pytest.mark.slow


def _finished(prediction_id: str, timeout: float = 120) -> Prediction:
    return wait_for(
        lambda: Prediction.objects.filter(pk=prediction_id, status__in=Prediction.TERMINAL).first(),
        timeout=timeout,
        message=f"{prediction_id} to finish",
    )


def test_a_pushed_trainable_image_trains_and_its_version_runs_in_containers(
    registry_stack: Any, cog_images: dict[str, str], user: Any, api: Any, start_agent: Any
) -> None:
    assert registry_stack.login("alice", token_for(user)).returncode == 0
    pushed = registry_stack.push(cog_images["trainable"], "alice/trainable", "v1")
    assert pushed.returncode == 0, pushed.stderr
    push = wait_for(
        lambda: ImagePush.objects.filter(repository="alice/trainable").first(),
        timeout=30,
        message="the registry's notification",
    )
    assert push.outcome == ImagePush.Outcome.PUBLISHED, push.reason
    base = push.version
    assert base is not None and base.is_trainable
    assert "phrase" in base.train_schema["components"]["schemas"]["Input"]["properties"]

    start_agent(AGENT_RUNTIME="docker", **registry_stack.env)
    response = api.post(
        f"/v1/models/alice/trainable/versions/{base.pk}/trainings",
        {"destination": "alice/tuned", "input": {"phrase": "from a container"}},
        format="json",
    )
    assert response.status_code == 201, response.content
    training = _finished(response.json()["id"])
    assert training.status == Prediction.Status.SUCCEEDED, (training.error, training.logs)
    client = docker.from_env()
    trainer = Instance.objects.get(pk=training.instance_id)
    assert trainer.runtime == "docker" and trainer.mode == "train"

    trained = Version.objects.get(training=training)
    assert trained.image == base.image and trained.weights
    response = api.post(
        "/v1/predictions", {"version": trained.pk, "input": {"name": "x"}}, format="json"
    )
    prediction = _finished(response.json()["id"])
    assert prediction.status == Prediction.Status.SUCCEEDED, prediction.error
    assert prediction.output == "from a container, x"
    runner = Instance.objects.get(pk=prediction.instance_id)
    assert runner.runtime == "docker" and runner.mode == "predict"
    container = client.containers.get(runner.runtime_ref)
    mounts = container.attrs["Mounts"]
    assert [m["Destination"] for m in mounts] == ["/var/run/marketplace-weights"]
    assert mounts[0]["RW"] is False

    # The base version, in its own container, is untrained.
    response = api.post(
        "/v1/predictions", {"version": base.pk, "input": {"name": "x"}}, format="json"
    )
    assert _finished(response.json()["id"]).output == "untrained, x"
