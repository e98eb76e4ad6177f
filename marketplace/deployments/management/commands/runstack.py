from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from marketplace.redisconn import ensure_embedded_redis, stop_embedded_redis

HOUSEKEEPING_SECONDS = 3600
DEV_MIN_RESIDENCY = 5


class Command(BaseCommand):
    help = "Run web (manage.py serve), the host agent and an RQ worker until interrupted (dev)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--bind", default="127.0.0.1:8000", help="host:port for the web server")
        parser.add_argument("--web-workers", type=int, default=1)

    def handle(self, *args: Any, bind: str, web_workers: int, **options: Any) -> None:
        started_redis = ensure_embedded_redis()
        env = {**os.environ, "REDIS_URL": settings.REDIS_URL}
        # The demo models set up in about a second, so a swapped-out one costs little: a short
        # minimum residency lets a newcomer try all six on the agent's four slots without
        # waiting. Production agents (systemd) keep the 30 s default that guards GPU hosts.
        env.setdefault("INSTANCE_MIN_RESIDENCY", str(DEV_MIN_RESIDENCY))
        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        commands = {
            # The production web command; the address as given (IPv6 in brackets included).
            "web": [*manage, "serve", "--bind", bind, "--workers", str(web_workers)],
            "agent": [*manage, "agent"],
            "worker": [*manage, "rqworker", "--with-scheduler", "default", "webhooks", "billing"],
        }
        processes = {
            name: subprocess.Popen(cmd, env=env, cwd=settings.BASE_DIR)
            for name, cmd in commands.items()
        }
        self.stderr.write(f"web on http://{bind}/ · agent · worker — Ctrl-C stops them all")

        stop = False

        def _stop(signum: int, frame: Any) -> None:
            nonlocal stop
            stop = True

        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)
        # What production runs from systemd timers (deploy/systemd/): hourly, first after a minute.
        housekeeping = [[*manage, "purge_files"], [*manage, "remove_expired_data"]]
        next_housekeeping = time.monotonic() + 60
        chores: list[subprocess.Popen[bytes]] = []
        try:
            while not stop:
                chores = [chore for chore in chores if chore.poll() is None]  # reap finished
                if time.monotonic() >= next_housekeeping:
                    next_housekeeping += HOUSEKEEPING_SECONDS
                    chores += [
                        subprocess.Popen(cmd, env=env, cwd=settings.BASE_DIR)
                        for cmd in housekeeping
                    ]
                for name, process in processes.items():
                    if process.poll() is not None:
                        self.stderr.write(
                            f"{name} exited with {process.returncode}; stopping the rest"
                        )
                        stop = True
                time.sleep(0.3)
        finally:
            for process in processes.values():
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 15
            for process in processes.values():
                try:
                    process.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    process.kill()
            if started_redis:
                stop_embedded_redis()
