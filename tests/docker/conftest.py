"""Real dockerd, a real docker-registry and real Cog images for the Docker runtime's tests.

These tests need dockerd. They fail loudly when it is unreachable (``make test`` starts it, with
scripts/services); set ``MARKETPLACE_SKIP_DOCKER=1`` to skip them on a machine without Docker.

One registry runs for the whole session (so image layers are pushed once, later pushes mount
them); each test starts its own web server on the port the registry's token realm and
notification URL point at.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from deploy.cogimage import build_model_image
from tests.conftest import BASE_DIR, LiveWeb, ServiceProcess, child_env, free_port, wait_for

EXAMPLES = BASE_DIR / "examples"
TRAINABLE = BASE_DIR / "tests" / "fixtures" / "cog" / "trainable"


@pytest.fixture(scope="session")
def docker_client() -> Any:
    if os.environ.get("MARKETPLACE_SKIP_DOCKER") == "1":
        pytest.skip("MARKETPLACE_SKIP_DOCKER=1: Docker tests skipped")
    import docker

    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except Exception as exc:
        pytest.fail(
            f"dockerd is not reachable ({exc}). Start it (make test does) or set "
            "MARKETPLACE_SKIP_DOCKER=1 to skip the Docker tests."
        )
    return client


@pytest.fixture(scope="session")
def cog_images(docker_client: Any) -> dict[str, str]:
    """Local tags of the test images (built offline on a cached base; see deploy/cogimage.py)."""
    images = {
        "hello": "marketplace-test/hello:latest",
        "slow": "marketplace-test/slow-progress:latest",
        "plain": "marketplace-test/hello-no-labels:latest",
        "trainable": "marketplace-test/trainable:latest",
    }
    build_model_image(docker_client, EXAMPLES / "hello", images["hello"])
    build_model_image(docker_client, EXAMPLES / "slow-progress", images["slow"])
    build_model_image(docker_client, EXAMPLES / "hello", images["plain"], labels=False)
    build_model_image(docker_client, TRAINABLE, images["trainable"])
    return images


@dataclass
class RegistryServer:
    host: str
    web_port: int
    process: ServiceProcess

    @property
    def url(self) -> str:
        return f"http://{self.host}"


@pytest.fixture(scope="session")
def registry_server(
    docker_client: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RegistryServer]:
    from marketplace.registry.keys import signing_key

    signing_key()  # generate the token key here, before any child process looks for it
    tmp = tmp_path_factory.mktemp("registry")
    host, web_port = f"127.0.0.1:{free_port()}", free_port()
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings",
        REGISTRY_TOKEN_REALM_BASE=f"http://127.0.0.1:{web_port}",
    )
    argv = [sys.executable, str(BASE_DIR / "manage.py"), "registry", "--listen", host,
            "--storage", str(tmp / "storage")]  # fmt: skip
    process = ServiceProcess("registry", argv, tmp, env).start()

    def answering() -> bool:
        if not process.alive():
            pytest.fail(f"docker-registry exited:\n{process.log()}")
        try:
            return httpx.get(f"http://{host}/v2/", timeout=2).status_code == 401
        except httpx.HTTPError:
            return False

    wait_for(answering, timeout=20, message="docker-registry to answer")
    yield RegistryServer(host, web_port, process)
    process.stop()


@dataclass
class Stack:
    registry: RegistryServer
    web: LiveWeb
    env: dict[str, str]
    docker_config: Path

    @property
    def host(self) -> str:
        return self.registry.host

    def docker(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "DOCKER_CONFIG": str(self.docker_config)},
            check=False,
        )

    def login(self, username: str, secret: str) -> subprocess.CompletedProcess[str]:
        return self.docker(
            "login", self.host, "-u", username, "--password-stdin", stdin=secret + "\n"
        )

    def push(self, local: str, repository: str, tag: str = "latest") -> subprocess.CompletedProcess:
        remote = f"{self.host}/{repository}:{tag}"
        tagged = self.docker("tag", local, remote)
        assert tagged.returncode == 0, tagged.stderr
        try:
            return self.docker("push", remote)
        finally:
            self.docker("rmi", remote)


@pytest.fixture
def registry_stack(
    registry_server: RegistryServer,
    cog_images: dict[str, str],
    transactional_db: None,
    tmp_path: Path,
    settings: Any,
) -> Iterator[Stack]:
    """The registry plus this test's own web server (token endpoint and notification sink)."""
    env = {"REGISTRY_HOST": registry_server.host, "REGISTRY_URL": registry_server.url}
    settings.REGISTRY_HOST = registry_server.host
    settings.REGISTRY_URL = registry_server.url
    url = f"http://127.0.0.1:{registry_server.web_port}"
    settings.PUBLIC_URL = url
    argv = [sys.executable, "-m", "uvicorn", "marketplace.asgi:application", "--host",
            "127.0.0.1", "--port", str(registry_server.web_port), "--no-access-log",
            "--lifespan", "off"]  # fmt: skip
    web = LiveWeb("web", argv, tmp_path, child_env(PUBLIC_URL=url, **env))
    web.url = url
    web.start().wait_ready()
    docker_config = tmp_path / "docker-config"
    docker_config.mkdir()
    try:
        yield Stack(registry_server, web, env, docker_config)
    finally:
        web.stop()
        # Agents clean up after themselves on a graceful stop; a test that killed one must not
        # leave its containers running for the next.
        for container in cog_containers(registry_server):
            container.remove(force=True)


def cog_containers(registry_server: RegistryServer) -> list[Any]:
    import docker

    return docker.from_env().containers.list(
        all=True, filters={"label": ["marketplace.managed=true"]}
    )
