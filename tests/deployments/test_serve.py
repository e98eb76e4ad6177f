"""``manage.py serve``: the production web command, as a real process with real workers, with
either server: two workers answer, a scrape sums both workers' request samples, the client's
address comes from the trusted proxy's ``X-Forwarded-For``, and SIGTERM stops it all."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from marketplace.settings import BASE_DIR
from tests.conftest import child_env, wait_for
from workers.runtimes.base import free_port

pytestmark = pytest.mark.django_db(transaction=True)


def _workers(serve: psutil.Process) -> list[psutil.Process]:
    """The server's worker processes: spawned interpreters (not multiprocessing's tracker)."""
    return [
        child
        for child in serve.children(recursive=True)
        if "spawn_main" in " ".join(child.cmdline())
    ]


def _request_count(metrics: str) -> float:
    """Requests to ``/v1/hardware`` in the exposition (all processes' samples, summed)."""
    pattern = (
        r'marketplace_http_request_duration_seconds_count\{[^}]*route="v1/hardware"[^}]*\} (\S+)'
    )
    return sum(float(value) for value in re.findall(pattern, metrics))


@pytest.mark.parametrize("server", ["granian", "uvicorn"])
def test_serve_runs_two_workers_that_answer_and_stop_on_sigterm(
    server: str, tmp_path: Path
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    argv = [sys.executable, str(BASE_DIR / "manage.py"), "serve", "--bind", f"127.0.0.1:{port}"]
    argv += ["--workers", "2", "--server", server]
    # /metrics answers only 10.9.8.7: reached through a proxy on 127.0.0.1 (trusted by default).
    env = child_env(PUBLIC_URL=base, METRICS_ALLOW_IPS="10.9.8.7", METRICS_TOKEN="")
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=BASE_DIR
        )
    serve = psutil.Process(process.pid)
    try:

        def answering() -> bool:
            assert process.poll() is None, log_path.read_text()
            try:
                return httpx.get(base + "/", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(answering, timeout=60, message="serve to answer")
        wait_for(lambda: len(_workers(serve)) == 2, timeout=30, message="two workers")
        workers = _workers(serve)
        # Every worker process loaded the application and takes connections.
        assert all(worker.is_running() for worker in workers)
        # One private multiprocess directory, so a scrape sums every worker's request samples.
        multiproc = {w.environ().get("PROMETHEUS_MULTIPROC_DIR") for w in workers}
        assert len(multiproc) == 1 and None not in multiproc
        metrics_dir = Path(next(iter(multiproc)))  # type: ignore[arg-type]
        for _ in range(20):  # a new connection each: the kernel spreads them over the workers
            assert httpx.get(base + "/v1/hardware", timeout=10).status_code == 401
        assert httpx.get(base + "/metrics", timeout=30).status_code == 404
        forwarded = {"X-Forwarded-For": "10.9.8.7", "X-Forwarded-Proto": "https"}
        scrape = httpx.get(base + "/metrics", headers=forwarded, timeout=30)
        assert scrape.status_code == 200
        assert _request_count(scrape.text) == 20
    finally:
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        try:
            returncode = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert returncode == 0, log_path.read_text()
    assert time.monotonic() - started < 15
    assert not any(worker.is_running() for worker in workers)
    assert not metrics_dir.exists()  # the private directory goes with the run
    assert "Traceback" not in log_path.read_text()
