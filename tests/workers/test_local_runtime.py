"""The local runtime against real Cog servers (cog + coglet from PyPI)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from tests.factories import EXAMPLES, FIXTURES
from workers.runtimes.base import HOST_MARKER, INSTANCE_MARKER, InstanceSpec, RuntimeFailure
from workers.runtimes.local import LocalRuntime

pytestmark = pytest.mark.slow


def spec(path: Path, **kwargs: object) -> InstanceSpec:
    return InstanceSpec(
        instance_id=kwargs.pop("instance_id", 1),  # type: ignore[arg-type]
        host_name=kwargs.pop("host_name", f"rt-{uuid.uuid4().hex[:6]}"),  # type: ignore[arg-type]
        version_id="0" * 64,
        source_path=str(path),
        **kwargs,  # type: ignore[arg-type]
    )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()


def test_server_becomes_ready_answers_and_always_stops(tmp_path: Path) -> None:
    runtime = LocalRuntime(log_dir=tmp_path)
    with runtime.instance(spec(EXAMPLES / "hello")) as running:
        health = runtime.wait_ready(running, timeout=60)
        assert health["status"] == "READY"
        response = httpx.post(
            f"{running.url}/predictions", json={"input": {"text": "cog"}}, timeout=10
        )
        assert response.json()["output"] == "hello cog"
        pid = running.process.pid  # type: ignore[attr-defined]
        assert running.exit_code() is None
    assert not alive(pid)
    assert running.exit_code() is not None


def test_model_processes_get_no_platform_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRET_KEY", "must-not-leak")
    monkeypatch.setenv("DATABASE_URL", "postgres://must-not-leak")
    runtime = LocalRuntime(log_dir=tmp_path)
    with runtime.instance(spec(EXAMPLES / "hello")) as running:
        runtime.wait_ready(running, timeout=60)
        environ = Path(f"/proc/{running.ref}/environ").read_bytes()
    assert b"must-not-leak" not in environ
    assert f"{INSTANCE_MARKER}=1".encode() in environ


def test_setup_failure_is_permanent_and_carries_the_setup_logs(tmp_path: Path) -> None:
    runtime = LocalRuntime(log_dir=tmp_path)
    with (
        runtime.instance(spec(FIXTURES / "cog" / "failing_setup")) as running,
        pytest.raises(RuntimeFailure) as failure,
    ):
        runtime.wait_ready(running, timeout=60)
    assert failure.value.permanent
    assert "weights missing" in failure.value.logs


def test_missing_model_directory_is_a_permanent_failure(tmp_path: Path) -> None:
    with pytest.raises(RuntimeFailure) as failure:
        LocalRuntime(log_dir=tmp_path).start(spec(tmp_path / "nope"))
    assert failure.value.permanent


def test_schema_file_is_written_from_the_version_so_coglet_validates(tmp_path: Path) -> None:
    project = tmp_path / "hello"
    shutil.copytree(EXAMPLES / "hello", project)
    schema = json.loads((project / ".cog" / "openapi_schema.json").read_text())
    shutil.rmtree(project / ".cog")
    runtime = LocalRuntime(log_dir=tmp_path)
    with runtime.instance(spec(project, schema=schema)) as running:
        runtime.wait_ready(running, timeout=60)
        response = httpx.post(f"{running.url}/predictions", json={"input": {"text": 5}}, timeout=10)
    assert response.status_code == 422
    assert (project / ".cog" / "openapi_schema.json").exists()


def test_crash_is_visible_through_exit_code(tmp_path: Path) -> None:
    runtime = LocalRuntime(log_dir=tmp_path)
    with runtime.instance(spec(EXAMPLES / "hello")) as running:
        runtime.wait_ready(running, timeout=60)
        os.kill(int(running.ref), signal.SIGKILL)
        running.process.wait(timeout=10)  # type: ignore[attr-defined]
        assert running.exit_code() == -signal.SIGKILL


def test_cleanup_removes_leftovers_of_this_host_only(tmp_path: Path) -> None:
    host = f"leftover-{uuid.uuid4().hex[:6]}"
    other = f"other-{uuid.uuid4().hex[:6]}"
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    mine = subprocess.Popen(
        sleeper, env={HOST_MARKER: host, INSTANCE_MARKER: "7"}, start_new_session=True
    )
    theirs = subprocess.Popen(
        sleeper, env={HOST_MARKER: other, INSTANCE_MARKER: "8"}, start_new_session=True
    )
    try:
        removed = LocalRuntime(log_dir=tmp_path).cleanup_leftovers(host)
        assert removed == [str(mine.pid)]
        mine.wait(timeout=5)
        assert theirs.poll() is None
    finally:
        for proc in (mine, theirs):
            proc.kill()
            proc.wait()


def test_an_unexpected_start_error_becomes_a_retryable_runtime_failure(tmp_path: Path) -> None:
    class Exploding(LocalRuntime):
        def start(self, spec: InstanceSpec):  # type: ignore[no-untyped-def]
            raise OSError("too many open files")

    with (
        pytest.raises(RuntimeFailure) as failure,
        Exploding(log_dir=tmp_path).instance(spec(EXAMPLES / "hello")),
    ):
        pass
    assert not failure.value.permanent
    assert "too many open files" in str(failure.value)
