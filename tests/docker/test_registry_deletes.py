"""Deleting a manifest from the registry hides its version; a pinned run then fails at pull.

Real dockerd, docker-registry (with deletes enabled, notifying the test's web server), the
token endpoint granting the owner `delete`, and an agent with the Docker runtime.
"""

from __future__ import annotations

import contextlib
from io import StringIO
from typing import Any

import docker
import httpx
import pytest
from django.conf import settings
from django.core.management import call_command

from marketplace.catalog.models import Version
from marketplace.predictions.models import Prediction
from marketplace.registry.models import ImagePush
from marketplace.registry.tokens import notify_secret
from tests.conftest import wait_for
from tests.docker.test_registry_to_container import _finished, _published
from tests.factories import token_for

pytestmark = pytest.mark.slow


def _registry_token(stack: Any, user: str, api_token: str, scope: str) -> str:
    response = httpx.get(
        f"{stack.web.url}/registry/token",
        params={"service": settings.REGISTRY_SERVICE, "scope": scope},
        auth=(user, api_token),
    )
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


def test_deleting_a_manifest_hides_its_version_and_a_pinned_run_fails_clearly(
    registry_stack: Any, cog_images: dict[str, str], user: Any, api: Any, start_agent: Any
) -> None:
    secret = token_for(user)
    assert registry_stack.login("alice", secret).returncode == 0
    assert registry_stack.push(cog_images["hello"], "alice/gone", "v1").returncode == 0
    push = _published("alice/gone")
    version = push.version
    assert version is not None and not version.hidden

    manifest = f"{registry_stack.registry.url}/v2/alice/gone/manifests/{push.digest}"
    # The owner deletes the manifest through the registry's own API.
    bearer = _registry_token(registry_stack, "alice", secret, "repository:alice/gone:delete")
    deleted = httpx.delete(manifest, headers={"Authorization": f"Bearer {bearer}"})
    assert deleted.status_code == 202, deleted.text

    wait_for(
        lambda: Version.objects.get(pk=version.pk).hidden,
        timeout=30,
        message="the registry's delete notification to hide the version",
    )
    push.refresh_from_db()
    assert push.deleted_at is not None
    assert api.get("/v1/models/alice/gone/versions").json()["results"] == []

    # Redelivered (the registry delivers at least once): nothing changes.
    envelope = {
        "events": [
            {"id": "again", "action": "delete",
             "target": {"repository": "alice/gone", "digest": push.digest}},
        ]
    }  # fmt: skip
    again = httpx.post(
        f"{registry_stack.web.url}/registry/events",
        json=envelope,
        headers={"Authorization": f"Bearer {notify_secret()}"},
    )
    assert again.status_code == 200, again.text
    assert again.json()["processed"][0]["deleted"] is True
    assert ImagePush.objects.get(pk=push.pk).deleted_at == push.deleted_at

    # Pinned by id it can still be asked for; the host cannot pull it, and says so.
    with contextlib.suppress(docker.errors.ImageNotFound):
        docker.from_env().images.remove(version.image)  # no copy cached on this host
    start_agent(AGENT_RUNTIME="docker", **registry_stack.env)
    response = api.post(
        "/v1/predictions",
        {"version": f"alice/gone:{version.pk}", "input": {"text": "x"}},
        format="json",
    )
    assert response.status_code == 201, response.content
    failed = _finished(response.json()["id"], timeout=60)
    assert failed.status == Prediction.Status.FAILED
    assert "is no longer in the registry" in failed.error, failed.error
    assert failed.started_at is None  # never ran, never billed

    # Pushing the same image again brings the version back.
    assert registry_stack.push(cog_images["hello"], "alice/gone", "v2").returncode == 0
    wait_for(
        lambda: not Version.objects.get(pk=version.pk).hidden,
        timeout=30,
        message="the push of the deleted digest to restore the version",
    )
    assert ImagePush.objects.get(pk=push.pk).deleted_at is None

    # A stale delete (the manifest is back) changes nothing: the registry is asked first.
    stale = httpx.post(
        f"{registry_stack.web.url}/registry/events",
        json=envelope,
        headers={"Authorization": f"Bearer {notify_secret()}"},
    )
    assert stale.status_code == 200 and stale.json()["processed"] == []
    assert not Version.objects.get(pk=version.pk).hidden

    # A delete whose notification was lost is found by reconcile_registry.
    bearer = _registry_token(registry_stack, "alice", secret, "repository:alice/gone:delete")
    assert httpx.delete(manifest, headers={"Authorization": f"Bearer {bearer}"}).status_code == 202
    wait_for(lambda: Version.objects.get(pk=version.pk).hidden, timeout=30, message="hidden")
    Version.objects.filter(pk=version.pk).update(hidden=False)  # as if never notified
    ImagePush.objects.filter(pk=push.pk).update(deleted_at=None)
    out = StringIO()
    call_command("reconcile_registry", "alice/gone", stdout=out)
    assert f"alice/gone@{push.digest}: deleted" in out.getvalue()
    assert Version.objects.get(pk=version.pk).hidden
