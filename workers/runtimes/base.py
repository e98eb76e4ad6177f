"""The interface every runtime (local subprocess, Docker, later Kubernetes) implements.

A runtime starts a Cog server for one version and hands back a :class:`RunningInstance`; the
instance supervisor does the rest (READY detection through ``/health-check``, routing, idling)
the same way for all of them. Adding a runtime is one module plus its test file.
"""

from __future__ import annotations

import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from workers.cog import CogClient


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (the caller binds it soon after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


# Environment marker put on every Cog process/container we start, so a restarted agent can find
# and remove what its previous run left behind.
INSTANCE_MARKER = "MARKETPLACE_INSTANCE"
HOST_MARKER = "MARKETPLACE_HOST"


class RuntimeFailure(Exception):
    """An instance could not be started or died.

    ``permanent`` means retrying on this instance cannot help (its server exited, the image
    lacks Cog); otherwise the platform may try again at once (a port clash, a registry hiccup).
    Whose fault it was is ``policy.setup_is_models_fault``'s decision, from ``exit_code`` (how
    the server exited, if it did) and ``models_fault``: the model's ``setup()`` failed (Cog
    reports SETUP_FAILED), or the version can never run (no such image or model directory).
    """

    def __init__(
        self,
        message: str,
        *,
        permanent: bool,
        logs: str = "",
        exit_code: int | None = None,
        models_fault: bool = False,
    ):
        super().__init__(message)
        self.permanent = permanent
        self.logs = logs
        self.exit_code = exit_code
        self.models_fault = models_fault


@dataclass
class InstanceSpec:
    instance_id: int
    host_name: str
    version_id: str
    source_path: str = ""
    image: str = ""
    upload_url: str = ""
    # Environment for the Cog server (webhook token, throttles, setup timeout).
    env: dict[str, str] = field(default_factory=dict)
    gpu_device_ids: list[str] = field(default_factory=list)
    cpu_count: int | None = None
    memory_gb: int | None = None
    schema: dict[str, Any] | None = None
    # "train": Cog's train mode (``--x-mode train``, the trainer of ``train:`` in cog.yaml).
    mode: str = "predict"
    # A trained version's weights on the agent's disk (``workers.weights``): ``COG_WEIGHTS``.
    weights_path: str = ""

    @property
    def training(self) -> bool:
        return self.mode == "train"


class RunningInstance(ABC):
    url: str
    ref: str

    @abstractmethod
    def exit_code(self) -> int | None:
        """None while the Cog server runs; its exit status once it has stopped."""

    @abstractmethod
    def logs(self, tail: int = 200) -> str:
        """The last lines the server wrote (stdout and stderr)."""

    @abstractmethod
    def stop(self, grace: float = 5.0) -> None:
        """Stop and clean up; safe to call twice and on an instance that already died."""


class Runtime(ABC):
    name: str

    @abstractmethod
    def start(self, spec: InstanceSpec) -> RunningInstance: ...

    @abstractmethod
    def cleanup_leftovers(self, host_name: str) -> list[str]:
        """Stop what a previous run of this host's agent left running; return what was removed."""

    @contextmanager
    def instance(self, spec: InstanceSpec) -> Iterator[RunningInstance]:
        try:
            running = self.start(spec)
        except RuntimeFailure:
            raise
        except Exception as exc:
            # An OSError from spawning, a Docker API error…: worth another try, not a crash.
            raise RuntimeFailure(
                f"Could not start the model server: {exc}", permanent=False
            ) from exc
        try:
            yield running
        finally:
            running.stop()

    def wait_ready(self, running: RunningInstance, timeout: float) -> dict[str, Any]:
        """Poll ``/health-check`` until READY; fail fast on SETUP_FAILED or an exited server."""
        client = CogClient(running.url)
        deadline = time.monotonic() + timeout
        delay = 0.02
        try:
            while True:
                code = running.exit_code()
                if code is not None:
                    raise RuntimeFailure(
                        f"The model server exited during setup (exit code {code})",
                        permanent=True,
                        logs=running.logs(),
                        exit_code=code,
                    )
                try:
                    health = client.health(timeout=2.0)
                except (httpx.TransportError, httpx.HTTPStatusError, ValueError):
                    health = {}
                status = health.get("status")
                if status in ("READY", "BUSY"):
                    return health
                if status in ("SETUP_FAILED", "DEFUNCT"):
                    setup = health.get("setup") or {}
                    raise RuntimeFailure(
                        f"The model's setup failed ({status})",
                        permanent=True,
                        logs=str(setup.get("logs") or running.logs()),
                        models_fault=True,
                    )
                if time.monotonic() > deadline:
                    raise RuntimeFailure(
                        f"The model server was not ready after {timeout:.0f} s",
                        permanent=True,
                        logs=running.logs(),
                    )
                time.sleep(delay)
                delay = min(delay * 1.5, 0.25)
        finally:
            client.close()
