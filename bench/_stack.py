"""A production-like stack for benchmarks: the web server and a host agent as subprocesses, on the
settings in the environment (``DATABASE_URL`` / ``REDIS_URL`` if set, else SQLite and the
embedded Redis under ``var/bench/``), with a ``bench`` user, an API token and demo models
published. Import after ``_env.prepare()``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from _env import ROOT


def setup(*examples: str) -> tuple[str, dict[str, Any]]:
    """Migrate, and publish ``examples`` for the ``bench`` user: (API token, {name: version})."""
    import django

    django.setup()
    from django.core.management import call_command

    from marketplace.accounts.models import ApiToken, User
    from marketplace.catalog.services import version_publish_local
    from marketplace.redisconn import ensure_embedded_redis

    call_command("migrate", verbosity=0)
    ensure_embedded_redis()
    user, _ = User.objects.get_or_create(username="bench")
    _, token = ApiToken.create_for(user, name="bench")
    versions = {}
    for name in examples:
        versions[name], _ = version_publish_local(
            path=ROOT / "examples" / name, owner=user.account, name=name
        )
    return token, versions


class Stack:
    """``web`` (``manage.py serve`` with ``web_workers`` processes) and optionally an agent."""

    def __init__(
        self, *, web_workers: int = 1, agent: bool = True, log_name: str = "bench"
    ) -> None:
        from django.conf import settings

        from workers.runtimes.base import free_port

        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "REDIS_URL": settings.REDIS_URL, "PUBLIC_URL": self.base}
        Path(settings.VAR_DIR).mkdir(parents=True, exist_ok=True)
        log = open(Path(settings.VAR_DIR) / f"{log_name}.log", "ab")  # noqa: SIM115
        manage = [sys.executable, "manage.py"]
        serve = [*manage, "serve", "--bind", f"127.0.0.1:{self.port}"]
        serve += ["--workers", str(web_workers)]
        self.processes: dict[str, subprocess.Popen[bytes]] = {
            "web": subprocess.Popen(serve, cwd=ROOT, env=env, stdout=log, stderr=log)
        }
        if agent:
            argv = [*manage, "agent", "--host-name", f"{log_name}-{self.port}"]
            self.processes["agent"] = subprocess.Popen(
                argv, cwd=ROOT, env=env, stdout=log, stderr=log
            )
        for _ in range(300):
            try:
                httpx.get(self.base + "/", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)

    def pid(self, name: str) -> int:
        return self.processes[name].pid

    def stop(self) -> None:
        for process in self.processes.values():
            process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
