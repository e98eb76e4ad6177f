"""The operators' page: staff only; hosts with GPUs used/free, live instances, queue depths."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from marketplace.deployments.models import Host, Instance
from marketplace.registry.models import ImagePush
from marketplace.scheduling import pools, starts
from tests.factories import UserFactory, cpu, publish


@pytest.mark.django_db
def test_staff_see_hosts_gpus_instances_and_queues(user: Any) -> None:
    version = publish(user, "hello", "hello")
    host = Host.objects.create(
        name="gpu-box-1",
        runtime="docker",
        gpus=[{"index": 0, "uuid": ""}, {"index": 1, "uuid": ""}],
    )
    Instance.objects.create(
        host=host, version=version, hardware=cpu(), runtime="docker", gpu_device_ids=["1"],
        state=Instance.State.READY,
    )  # fmt: skip
    pool = pools.version_pool(version.pk)
    starts.enqueue(
        "x",
        pool,
        user.account.pk,
        None,
        version_id=version.pk,
        sku="cpu",
        model_id=version.model_id,
    )
    client = Client()
    assert client.get("/ops/hosts/").status_code == 302  # sign in first
    client.force_login(user)
    assert client.get("/ops/hosts/").status_code == 404  # not staff: nothing to see here
    client.force_login(UserFactory(username="ops", is_staff=True))
    page = client.get("/ops/hosts/").content.decode()
    assert "gpu-box-1" in page
    assert "1 / 2" in page  # GPUs used / total
    assert "0 free" in page and "1 → #" in page
    assert "alice/hello" in page
    assert f"predictions for version <code>{version.pk[:12]}</code></td><td>1<" in page


@pytest.mark.django_db
def test_refused_pushes_are_listed_for_the_model_page(user: Any) -> None:
    version = publish(user, "hello", "hello")
    ImagePush.objects.create(
        repository="alice/hello", digest="sha256:" + "1" * 64, model=version.model,
        outcome=ImagePush.Outcome.REJECTED, reason="This image is not a Cog model",
    )  # fmt: skip
    [refused] = ImagePush.refused_since_last_version(version.model)
    assert refused.reason == "This image is not a Cog model"
    owner = Client()
    owner.force_login(user)
    for path in ("/alice/hello", "/alice/hello/push"):
        page = owner.get(path).content.decode()
        assert "Pushed images that are not versions" in page, path
        assert "This image is not a Cog model" in page, path
    visitor = Client()
    visitor.force_login(UserFactory(username="bob"))
    assert "This image is not a Cog model" not in visitor.get("/alice/hello").content.decode()
