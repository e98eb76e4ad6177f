"""Docker runtime: each instance is a container of the version's image, pulled by digest.

- Images come from the platform's registry, always as ``repository@sha256:…``, pulled with a
  short-lived robot credential (:func:`marketplace.registry.tokens.robot_password`) passed
  explicitly, never from ``~/.docker/config.json``.
- Networking: ``DOCKER_NETWORK=host`` (default) shares the host's network; the platform picks a
  loopback port and Cog listens there (``PORT``), so Cog — which has no authentication — is never
  reachable from outside and reaches the agent's webhook server on 127.0.0.1. Any other value is a
  Docker network: Cog listens on 5000 inside and is published on ``DOCKER_PUBLISH_HOST`` at a
  random port (set ``AGENT_CALLBACK_HOST`` to an address containers can reach then).
- GPUs: exactly the ``device_ids`` the platform allocated from the host's inventory
  (:mod:`marketplace.deployments.services`). Never ``count=N``, which Docker always maps to GPUs
  ``0..N-1`` whatever else is running.
- Limits from the hardware (memory, CPUs clamped to what the host has), labels for bookkeeping;
  READY detection, crash detection and logs go through :class:`RunningInstance`.
- On agent start, :meth:`DockerRuntime.cleanup_leftovers` removes every container labelled with
  this host's name.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from pathlib import PurePosixPath
from typing import Any

import docker
import docker.errors
from django.conf import settings
from docker.models.containers import Container
from docker.types import DeviceRequest

from workers.runtimes.base import (
    InstanceSpec,
    RunningInstance,
    Runtime,
    RuntimeFailure,
    free_port,
)

logger = logging.getLogger(__name__)

LABEL_MANAGED = "marketplace.managed"
LABEL_HOST = "marketplace.host"
LABEL_INSTANCE = "marketplace.instance"
LABEL_VERSION = "marketplace.version"
LABEL_GPUS = "marketplace.gpus"
COG_PORT = 5000
# Where a trained version's weights appear inside its container.
WEIGHTS_DIR = "/var/run/marketplace-weights"
# The state of a container is read at most this often (the supervisor polls exit_code()).
STATE_CACHE_SECONDS = 0.25


def split_reference(image: str) -> tuple[str, str]:
    """``host/owner/name@sha256:…`` → (repository, digest). Tags are refused: pin by digest."""
    repository, sep, digest = image.partition("@")
    if not sep or not digest.startswith("sha256:") or len(digest) != 71:
        raise RuntimeFailure(
            f"The image {image!r} is not pinned to a digest (repository@sha256:…)", permanent=True
        )
    return repository, digest


def container_name(spec: InstanceSpec) -> str:
    safe_host = "".join(c if c.isalnum() or c in "_.-" else "-" for c in spec.host_name)
    return f"mkt-{safe_host}-{spec.instance_id}"


def container_options(
    spec: InstanceSpec,
    *,
    network: str,
    port: int | None = None,
    publish_host: str = "127.0.0.1",
    host_cpus: int | None = None,
) -> dict[str, Any]:
    """Keyword arguments for ``containers.run``: what the platform decided, in Docker's terms."""
    env = dict(spec.env)
    command = ["python", "-m", "cog.server.http"]
    # Same image, other mode: `cog build` baked COG_TRAIN_TYPE_STUB into a trainable image.
    if spec.training:
        command += ["--x-mode", "train"]
    options: dict[str, Any] = {
        "name": container_name(spec),
        "detach": True,
        "labels": {
            LABEL_MANAGED: "true",
            LABEL_HOST: spec.host_name,
            LABEL_INSTANCE: str(spec.instance_id),
            LABEL_VERSION: spec.version_id,
            LABEL_GPUS: ",".join(spec.gpu_device_ids),
        },
        "shm_size": "1g",
        "restart_policy": {"Name": "no"},
    }
    if network == "host":
        if port is None:
            raise ValueError("host networking needs a port")
        env["PORT"] = str(port)
        command += ["--host", "127.0.0.1"]
        options["network_mode"] = "host"
    else:
        env["PORT"] = str(COG_PORT)
        command += ["--host", "0.0.0.0"]  # noqa: S104 — inside the container; published below
        options["network"] = network
        options["ports"] = {f"{COG_PORT}/tcp": (publish_host, None)}
    if spec.upload_url:
        command += ["--upload-url", spec.upload_url]
    if spec.weights_path:
        # The agent's copy of a trained version's weights, read-only (``workers.weights``).
        weights = PurePosixPath(spec.weights_path)
        options["volumes"] = {str(weights.parent): {"bind": WEIGHTS_DIR, "mode": "ro"}}
        env["COG_WEIGHTS"] = f"{WEIGHTS_DIR}/{weights.name}"
    options["command"] = command
    options["environment"] = env
    if spec.gpu_device_ids:
        options["device_requests"] = [
            DeviceRequest(device_ids=list(spec.gpu_device_ids), capabilities=[["gpu"]])
        ]
    if spec.memory_gb:
        options["mem_limit"] = f"{spec.memory_gb}g"
    if spec.cpu_count:
        cpus = min(spec.cpu_count, host_cpus) if host_cpus else spec.cpu_count
        options["nano_cpus"] = int(cpus * 1_000_000_000)
    return options


class DockerInstance(RunningInstance):
    def __init__(self, container: Container, url: str):
        self.container = container
        self.url = url
        self.ref = str(container.id)
        self._lock = threading.Lock()
        self._checked = 0.0
        self._exit: int | None = None

    def exit_code(self) -> int | None:
        with self._lock:
            if self._exit is not None or time.monotonic() - self._checked < STATE_CACHE_SECONDS:
                return self._exit
            self._checked = time.monotonic()
            try:
                self.container.reload()
            except docker.errors.NotFound:
                self._exit = -1  # removed behind our back
                return self._exit
            except docker.errors.APIError:
                return None  # dockerd hiccup: ask again next time
            if self.container.status in ("exited", "dead"):
                state = self.container.attrs.get("State") or {}
                self._exit = int(state.get("ExitCode", -1))
            return self._exit

    def logs(self, tail: int = 200) -> str:
        try:
            return bytes(self.container.logs(tail=tail)).decode("utf-8", "replace")
        except docker.errors.APIError:
            return ""

    def stop(self, grace: float = 5.0) -> None:
        try:
            self.container.stop(timeout=int(max(1, grace)))
        except docker.errors.NotFound:
            return
        except docker.errors.APIError:
            logger.warning("could not stop container %s", self.ref[:12], exc_info=True)
        try:
            self.container.remove(force=True, v=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError:
            logger.warning("could not remove container %s", self.ref[:12], exc_info=True)


class DockerRuntime(Runtime):
    name = "docker"

    def __init__(
        self,
        client: docker.DockerClient | None = None,
        *,
        network: str | None = None,
        publish_host: str | None = None,
    ):
        self.client = client or docker.from_env(timeout=300)
        self.network = network or settings.DOCKER_NETWORK
        self.publish_host = publish_host or settings.DOCKER_PUBLISH_HOST
        self._host_cpus: int | None = None
        # Seconds the last start spent pulling and creating+starting (for logs and benchmarks).
        self.last_timings: dict[str, float] = {}

    def host_cpus(self) -> int | None:
        if self._host_cpus is None:
            self._host_cpus = int(self.client.info().get("NCPU") or 0) or None
        return self._host_cpus

    def pull(self, image: str, host_name: str = "") -> bool:
        """Make sure the image is present; True if it had to be pulled."""
        from marketplace.registry.tokens import ROBOT_USERNAME, robot_password

        repository, digest = split_reference(image)
        try:
            self.client.images.get(image)
            return False
        except docker.errors.ImageNotFound:
            pass
        auth = {"username": ROBOT_USERNAME, "password": robot_password(host_name)}
        try:
            for event in self.client.api.pull(
                repository, tag=digest, auth_config=auth, stream=True, decode=True
            ):
                if "error" in event:
                    raise RuntimeFailure(
                        f"Pulling {image} failed: {event['error']}", permanent=False
                    )
        except docker.errors.APIError as exc:
            explanation = exc.explanation or str(exc)
            permanent = exc.status_code == 404 or "manifest unknown" in str(explanation)
            if permanent:
                # Versions exist only for pushed manifests: this one was deleted since.
                message = f"The image {image} is no longer in the registry ({explanation})"
            else:
                message = f"Pulling {image} failed: {explanation}"
            raise RuntimeFailure(message, permanent=permanent, models_fault=permanent) from exc
        return True

    def start(self, spec: InstanceSpec) -> DockerInstance:
        if not spec.image:
            raise RuntimeFailure(
                "This version has no image: the docker runtime runs pushed images only",
                permanent=True,
                models_fault=True,
            )
        started = time.monotonic()
        self.pull(spec.image, spec.host_name)
        pulled = time.monotonic()
        port = free_port() if self.network == "host" else None
        options = container_options(
            spec,
            network=self.network,
            port=port,
            publish_host=self.publish_host,
            host_cpus=self.host_cpus(),
        )
        with contextlib.suppress(docker.errors.NotFound):
            self.client.containers.get(options["name"]).remove(force=True)
        try:
            container = self.client.containers.run(spec.image, **options)
        except docker.errors.APIError as exc:
            raise RuntimeFailure(
                f"Docker could not start the model: {exc.explanation or exc}",
                permanent=exc.status_code is not None and 400 <= exc.status_code < 500,
            ) from exc
        if self.network == "host":
            url = f"http://127.0.0.1:{port}"
        else:
            container.reload()
            bindings = (container.ports or {}).get(f"{COG_PORT}/tcp") or []
            if not bindings:
                container.remove(force=True)
                raise RuntimeFailure("Docker published no port for the model", permanent=False)
            url = f"http://{self.publish_host}:{bindings[0]['HostPort']}"
        self.last_timings = {"pull": pulled - started, "start": time.monotonic() - pulled}
        logger.info(
            "instance %s: container %s at %s (pull %.2f s, create+start %.2f s)",
            spec.instance_id,
            str(container.id)[:12],
            url,
            self.last_timings["pull"],
            self.last_timings["start"],
        )
        return DockerInstance(container, url)

    def cleanup_leftovers(self, host_name: str) -> list[str]:
        removed = []
        containers = self.client.containers.list(
            all=True, filters={"label": [f"{LABEL_MANAGED}=true", f"{LABEL_HOST}={host_name}"]}
        )
        for container in containers:
            try:
                container.remove(force=True, v=True)
            except docker.errors.NotFound:
                continue
            removed.append(str(container.name))
        return removed
