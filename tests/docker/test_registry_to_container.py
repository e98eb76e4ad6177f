"""Publish by `docker push`, run in a container: registry, token auth, notifications, runtime.

Everything is real: dockerd, docker-registry with token auth delegated to the test's web server,
the docker CLI, an agent process with the Docker runtime.
"""

from __future__ import annotations

from typing import Any

import docker
import httpx
import pytest
from django.core.management import call_command

from marketplace.catalog.models import Version
from marketplace.deployments.models import Instance
from marketplace.predictions.models import Prediction
from marketplace.registry.models import ImagePush
from marketplace.registry.services import version_id_for
from marketplace.registry.tokens import notify_secret
from tests.conftest import wait_for
from tests.factories import UserFactory, token_for

pytestmark = pytest.mark.slow


def _published(repository: str) -> ImagePush:
    return wait_for(
        lambda: ImagePush.objects.filter(repository=repository).first(),
        timeout=30,
        message=f"the registry's notification for {repository}",
    )


def _finished(prediction_id: str, timeout: float = 90) -> Prediction:
    return wait_for(
        lambda: Prediction.objects.filter(pk=prediction_id, status__in=Prediction.TERMINAL).first(),
        timeout=timeout,
        message=f"prediction {prediction_id} to finish",
    )


def test_push_with_api_token_publishes_a_version_that_runs_in_a_container(
    registry_stack: Any, cog_images: dict[str, str], user: Any, api: Any, start_agent: Any
) -> None:
    login = registry_stack.login("alice", token_for(user))
    assert login.returncode == 0, login.stderr
    pushed = registry_stack.push(cog_images["hello"], "alice/hello", "v1")
    assert pushed.returncode == 0, pushed.stderr

    push = _published("alice/hello")
    assert push.outcome == ImagePush.Outcome.PUBLISHED, push.reason
    assert push.tag == "v1" and push.pushed_by == "alice"
    version = Version.objects.get(pk=version_id_for("alice/hello", push.digest))
    assert push.digest in pushed.stdout  # the digest docker reported is the one pinned
    assert version.image == f"{registry_stack.host}/alice/hello@{push.digest}"
    assert version.model.owner.username == "alice" and version.model.name == "hello"
    assert list(version.schema["components"]["schemas"]["Input"]["properties"]) == ["text"]
    assert version.cog_version == "0.23.1"
    assert version.cog_config["predict"] == "predict.py:Predictor"

    # The registry may deliver a notification again: same envelope, still one version.
    target = {
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "repository": "alice/hello",
        "digest": push.digest,
        "tag": "v1",
    }
    envelope = {
        "events": [
            {"id": "redelivered", "action": "push", "actor": {"name": "alice"}, "target": target}
        ]
    }
    response = httpx.post(
        f"{registry_stack.web.url}/registry/events",
        json=envelope,
        headers={"Authorization": f"Bearer {notify_secret()}"},
    )
    assert response.status_code == 200, response.text
    assert Version.objects.filter(model=version.model).count() == 1
    assert ImagePush.objects.filter(repository="alice/hello").count() == 1
    # Without the shared secret nobody can make versions appear.
    forged = httpx.post(f"{registry_stack.web.url}/registry/events", json=envelope)
    assert forged.status_code == 401

    start_agent(AGENT_RUNTIME="docker", **registry_stack.env)
    response = api.post(
        "/v1/predictions",
        {"version": version.id, "input": {"text": "from a container"}},
        format="json",
    )
    assert response.status_code == 201, response.content
    prediction = _finished(response.json()["id"])
    assert prediction.status == Prediction.Status.SUCCEEDED, prediction.error
    assert prediction.output == "hello from a container"

    instance = Instance.objects.get(pk=prediction.instance_id)
    assert instance.runtime == "docker"
    container = docker.from_env().containers.get(instance.runtime_ref)
    assert container.labels["marketplace.instance"] == str(instance.pk)
    assert container.labels["marketplace.version"] == version.id
    assert container.image.id == docker.from_env().images.get(cog_images["hello"]).id


def test_push_into_another_owners_namespace_is_refused(
    registry_stack: Any, cog_images: dict[str, str], user: Any
) -> None:
    mallory = UserFactory(username="mallory")
    assert registry_stack.login("mallory", token_for(mallory)).returncode == 0
    pushed = registry_stack.push(cog_images["hello"], "alice/evil", "v1")
    assert pushed.returncode != 0
    assert "denied" in pushed.stderr or "unauthorized" in pushed.stderr, pushed.stderr
    assert not ImagePush.objects.filter(repository="alice/evil").exists()
    assert not Version.objects.filter(model__name="evil").exists()
    # A wrong token does not even log in.
    refused = registry_stack.login("mallory", "mkt_not-a-real-token")
    assert refused.returncode != 0


def test_image_without_cog_labels_creates_no_version_and_says_why(
    registry_stack: Any, cog_images: dict[str, str], user: Any
) -> None:
    assert registry_stack.login("alice", token_for(user)).returncode == 0
    pushed = registry_stack.push(cog_images["plain"], "alice/plain", "v1")
    assert pushed.returncode == 0, pushed.stderr
    push = _published("alice/plain")
    assert push.outcome == ImagePush.Outcome.REJECTED
    assert "run.cog.config" in push.reason and "not a Cog model" in push.reason
    assert push.model is not None and push.model.name == "plain"
    assert not Version.objects.filter(model__name="plain").exists()


def test_reconcile_records_pushes_whose_notification_was_lost(
    registry_stack: Any, cog_images: dict[str, str], user: Any
) -> None:
    assert (
        registry_stack.login(
            "alice",
            token_for(user),
        ).returncode
        == 0
    )
    assert registry_stack.push(cog_images["hello"], "alice/recon", "v1").returncode == 0
    push = _published("alice/recon")
    # As if the registry restarted before delivering: nothing recorded.
    Version.objects.filter(pk=push.version_id).delete()
    ImagePush.objects.all().delete()
    call_command("reconcile_registry", "alice/recon")
    again = ImagePush.objects.get(repository="alice/recon")
    assert again.outcome == ImagePush.Outcome.PUBLISHED and again.digest == push.digest
    assert Version.objects.filter(pk=version_id_for("alice/recon", push.digest)).exists()
    call_command("reconcile_registry")  # the whole catalog; nothing new, nothing twice
    assert ImagePush.objects.filter(repository="alice/recon").count() == 1


def test_killed_container_fails_its_prediction_and_the_next_one_gets_a_fresh_container(
    registry_stack: Any, cog_images: dict[str, str], user: Any, api: Any, start_agent: Any
) -> None:
    assert registry_stack.login("alice", token_for(user)).returncode == 0
    assert registry_stack.push(cog_images["slow"], "alice/slow", "v1").returncode == 0
    version = _published("alice/slow").version
    assert version is not None
    start_agent(AGENT_RUNTIME="docker", **registry_stack.env)

    response = api.post(
        "/v1/predictions",
        {"version": version.id, "input": {"steps": 100, "step_seconds": 0.5}},
        format="json",
    )
    assert response.status_code == 201, response.content
    first_id = response.json()["id"]
    running = wait_for(
        lambda: Prediction.objects.filter(pk=first_id, status="processing").first(),
        timeout=90,
        message="the slow prediction to start",
    )
    first_container = Instance.objects.get(pk=running.instance_id).runtime_ref
    docker.from_env().containers.get(first_container).kill()

    failed = _finished(first_id, timeout=30)
    assert failed.status == Prediction.Status.FAILED
    assert "model server stopped unexpectedly" in failed.error
    assert "exit code 137" in failed.error
    # The runner marks the instance failed before it fails the prediction that was on it.
    dead = Instance.objects.get(pk=running.instance_id)
    assert dead.state == Instance.State.FAILED

    response = api.post(
        "/v1/predictions",
        {"version": version.id, "input": {"steps": 1, "step_seconds": 0}},
        format="json",
    )
    second = _finished(response.json()["id"])
    assert second.status == Prediction.Status.SUCCEEDED, second.error
    assert second.output.startswith("Completed 1 steps")
    fresh = Instance.objects.get(pk=second.instance_id)
    assert fresh.pk != dead.pk and fresh.runtime_ref != first_container

    def removed() -> bool:
        try:
            docker.from_env().containers.get(first_container)
        except docker.errors.NotFound:
            return True
        return False

    wait_for(removed, timeout=30, message="the dead container to be removed")
