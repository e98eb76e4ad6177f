from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from rest_framework.test import APIClient

from marketplace.redisconn import get_redis
from tests.factories import UserFactory, cpu, token_for
from workers.runtimes.base import free_port

BASE_DIR = Path(settings.BASE_DIR)


def wait_for(
    condition: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05, message: str = ""
) -> Any:
    """Poll until ``condition()`` is truthy; return its value or fail the test."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {message or condition}")
        time.sleep(interval)


@pytest.fixture(autouse=True)
def clean_redis() -> Iterator[None]:
    url = settings.REDIS_URL
    if not settings.REDIS_EMBEDDED and url.rstrip("/").endswith("/0"):
        pytest.exit(
            "Refusing to flush Redis database 0: "
            "point REDIS_URL at a database of its own (e.g. /15)"
        )
    get_redis().flushdb()
    yield


@pytest.fixture
def user(db: None) -> Any:
    cpu()
    return UserFactory(username="alice")


@pytest.fixture
def outsider(db: None) -> Any:
    return UserFactory(username="mallory")


@pytest.fixture
def api(user: Any) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(user)}")
    return client


@pytest.fixture
def outsider_api(outsider: Any) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(outsider)}")
    return client


def child_env(**extra: str) -> dict[str, str]:
    """Environment for processes that must share this test run's database, Redis and files."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings",
        TEST_DATABASE_NAME=str(connection.settings_dict["NAME"]),
        REDIS_URL=settings.REDIS_URL,
        VAR_DIR=str(settings.VAR_DIR),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


class AgentProcess:
    """A real ``manage.py agent`` process for one test."""

    def __init__(
        self,
        log_dir: Path,
        idle_timeout: float,
        max_instances: int,
        host_name: str | None = None,
        env: dict[str, str] | None = None,
    ):
        self.env = env or {}
        self.host_name = host_name or f"test-{uuid.uuid4().hex[:8]}"
        self.idle_timeout = idle_timeout
        self.max_instances = max_instances
        self.log_path = log_dir / f"agent-{self.host_name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> AgentProcess:
        from marketplace.deployments.models import Host

        started = time.time()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    str(BASE_DIR / "manage.py"),
                    "agent",
                    "--host-name",
                    self.host_name,
                    "--idle-timeout",
                    str(self.idle_timeout),
                    "--max-instances",
                    str(self.max_instances),
                ],
                env=child_env(**self.env),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=BASE_DIR,
            )

        def registered() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                pytest.fail(f"agent exited with {self.process.returncode}:\n{self.log()}")
            host = Host.objects.filter(name=self.host_name).first()
            return (
                host is not None
                and host.started_at is not None
                and host.started_at.timestamp() >= started - 1
            )

        wait_for(registered, timeout=30, message="the agent to register")
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 30) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()


@pytest.fixture
def start_agent(transactional_db: None, tmp_path: Path) -> Iterator[Callable[..., AgentProcess]]:
    agents: list[AgentProcess] = []

    def _start(
        idle_timeout: float = 60.0,
        max_instances: int = 4,
        host_name: str | None = None,
        **env: str,
    ) -> AgentProcess:
        agent = AgentProcess(tmp_path, idle_timeout, max_instances, host_name, env).start()
        agents.append(agent)
        return agent

    yield _start
    for agent in agents:
        agent.stop()


class ServiceProcess:
    """A real long-running child process (web server, RQ worker) with its output in a log file."""

    def __init__(self, name: str, argv: list[str], log_dir: Path, env: dict[str, str]):
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceProcess:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=BASE_DIR
            )
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 20) -> None:
        if not self.alive():
            return
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        if self.alive():
            assert self.process is not None
            self.process.kill()
            self.process.wait()


class LiveWeb(ServiceProcess):
    """``uvicorn marketplace.asgi`` on a free loopback port, sharing the test database."""

    url: str

    def wait_ready(self) -> LiveWeb:
        import httpx

        def ready() -> bool:
            if not self.alive():
                pytest.fail(f"{self.name} exited:\n{self.log()}")
            try:
                return httpx.get(self.url + "/", timeout=2).status_code < 500
            except httpx.HTTPError:
                return False

        wait_for(ready, timeout=30, message=f"{self.name} to answer")
        return self


@pytest.fixture
def start_web(
    transactional_db: None, tmp_path: Path, settings: Any
) -> Iterator[Callable[..., LiveWeb]]:
    """Start the real ASGI web server; PUBLIC_URL points at it here and in the child."""
    started: list[ServiceProcess] = []

    def _start(**env: str) -> LiveWeb:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        settings.PUBLIC_URL = url
        argv = [
            sys.executable,
            "-m",
            "uvicorn",
            "marketplace.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--lifespan",
            "off",
            # An event stream whose client left holds a graceful stop until its next write.
            "--timeout-graceful-shutdown",
            "2",
        ]
        web = LiveWeb(f"web-{port}", argv, tmp_path, child_env(PUBLIC_URL=url, **env))
        web.url = url
        started.append(web)
        return web.start().wait_ready()

    yield _start
    for process in started:
        process.stop()


@pytest.fixture
def start_worker(transactional_db: None, tmp_path: Path) -> Iterator[Callable[..., ServiceProcess]]:
    """Start a real ``manage.py rqworker`` on the given queues."""
    started: list[ServiceProcess] = []

    def _start(*queues: str, **env: str) -> ServiceProcess:
        argv = [sys.executable, str(BASE_DIR / "manage.py"), "rqworker", *(queues or ("default",))]
        worker = ServiceProcess(f"worker-{len(started)}", argv, tmp_path, child_env(**env))
        started.append(worker)
        return worker.start()

    yield _start
    for process in started:
        process.stop()
