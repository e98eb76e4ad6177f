"""The Docker runtime's own duties on real dockerd: leftovers, refusing unpinned images, logs."""

from __future__ import annotations

import contextlib
from typing import Any

import docker
import pytest

from workers.runtimes.base import InstanceSpec, RuntimeFailure
from workers.runtimes.docker import DockerRuntime

pytestmark = pytest.mark.slow


def test_agent_start_removes_only_its_own_hosts_leftover_containers(
    docker_client: Any, cog_images: dict[str, str]
) -> None:
    def leftover(host: str) -> Any:
        return docker_client.containers.run(
            cog_images["hello"], ["sleep", "60"], detach=True,
            labels={"marketplace.managed": "true", "marketplace.host": host,
                    "marketplace.instance": "1"},
        )  # fmt: skip

    mine, theirs = leftover("crashed-host"), leftover("other-host")
    try:
        removed = DockerRuntime(docker_client).cleanup_leftovers("crashed-host")
        assert removed == [mine.name]
        with pytest.raises(docker.errors.NotFound):
            docker_client.containers.get(mine.id)
        assert docker_client.containers.get(theirs.id).status == "running"
    finally:
        for container in (mine, theirs):
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)


def test_images_must_be_pinned_by_digest(docker_client: Any) -> None:
    runtime = DockerRuntime(docker_client)
    spec = InstanceSpec(instance_id=1, host_name="h", version_id="v", image="r.example/a/b:latest")
    with pytest.raises(RuntimeFailure, match="not pinned to a digest") as caught:
        runtime.start(spec)
    assert caught.value.permanent
    with pytest.raises(RuntimeFailure, match="no image"):
        runtime.start(InstanceSpec(instance_id=1, host_name="h", version_id="v"))
