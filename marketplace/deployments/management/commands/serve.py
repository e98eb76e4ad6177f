"""``python manage.py serve``: the web processes, production and development alike.

Several worker processes (``--workers``, default ``WEB_WORKERS`` or the CPUs this process may
run on) on one listening socket, each an event loop running ``marketplace.asgi:application``.
The server is granian unless ``--server uvicorn`` (or ``WEB_SERVER=uvicorn``) says otherwise:
bench/README.md has the measurements that chose it. Neither logs every request (``--access-log``
turns that on). Forwarded headers are believed from ``FORWARDED_ALLOW_IPS`` (default
127.0.0.1, where the TLS proxy runs).

With more than one worker, each process's request-latency histogram must reach ``/metrics``
whichever process answers: prometheus_client's multiprocess mode, in ``PROMETHEUS_MULTIPROC_DIR``.
This command empties that directory at start (samples of a previous run's processes would be
summed forever), or makes a private one for this run and removes it at exit when none is set.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from marketplace import serving
from marketplace.env import envint, envstr

SERVERS = ("granian", "uvicorn")
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def default_workers() -> int:
    return envint("WEB_WORKERS", len(os.sched_getaffinity(0)), minimum=1)


class Command(BaseCommand):
    help = "Serve the site and API with several ASGI worker processes (granian or uvicorn)."
    # The workers load the whole project anyway; `manage.py check --deploy` is the place for checks.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--bind", default="127.0.0.1:8000", help="host:port to listen on")
        parser.add_argument(
            "--workers",
            type=int,
            default=None,
            help="worker processes (default WEB_WORKERS, or CPUs)",
        )
        parser.add_argument(
            "--server", choices=SERVERS, default=None, help="default WEB_SERVER, or granian"
        )
        parser.add_argument("--access-log", action="store_true", help="log every request")
        parser.add_argument("--log-level", choices=LOG_LEVELS, default="info")

    def handle(
        self,
        *args: Any,
        bind: str,
        workers: int | None,
        server: str | None,
        access_log: bool,
        log_level: str,
        **options: Any,
    ) -> None:
        host, _, port_text = bind.rpartition(":")
        if not host or not port_text.isdigit():
            raise CommandError(f"--bind {bind!r}: expected HOST:PORT")
        host = host.strip("[]")  # [::1]:8000
        workers = workers if workers is not None else default_workers()
        if workers < 1:
            raise CommandError("--workers must be at least 1")
        server = server or envstr("WEB_SERVER") or "granian"
        if server not in SERVERS:
            raise CommandError(f"WEB_SERVER={server!r}: expected one of {', '.join(SERVERS)}")
        private_dir = _prepare_metrics_dir(workers)
        try:
            run = _run_granian if server == "granian" else _run_uvicorn
            run(host, int(port_text), workers, access_log, log_level)
        finally:
            if private_dir is not None:
                shutil.rmtree(private_dir, ignore_errors=True)


def _prepare_metrics_dir(workers: int) -> str | None:
    """Empty ``PROMETHEUS_MULTIPROC_DIR``, or make a private one when several workers need it.
    Returns the directory to remove at exit (the private one)."""
    configured = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if configured:
        path = Path(configured)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):  # only prometheus_client's files
            stale.unlink(missing_ok=True)
        return None
    if workers == 1:
        return None
    private = tempfile.mkdtemp(prefix="marketplace-metrics-")
    # Read by prometheus_client when the workers import it: they are spawned after this.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = private
    return private


def _run_granian(host: str, port: int, workers: int, access_log: bool, log_level: str) -> None:
    from granian.constants import Interfaces, Loops  # type: ignore[import-untyped]
    from granian.log import LogLevels  # type: ignore[import-untyped]
    from granian.server import Server  # type: ignore[import-untyped]

    # Fresh interpreters rather than forks of this one (which has loaded Django and may hold
    # connections): each worker imports the application itself, as uvicorn's do.
    multiprocessing.set_start_method("spawn", force=True)
    Server(
        serving.TARGET,
        address=host,
        port=port,
        interface=Interfaces.ASGINL,  # no lifespan (marketplace/serving.py)
        workers=workers,
        loop=Loops.uvloop,
        log_level=LogLevels(log_level),
        log_access=access_log,
        respawn_failed_workers=True,  # as uvicorn's supervisor does
        # The app serves its own static files (WhiteNoise); no granian mount.
    ).serve(target_loader=serving.granian_loader)


def _run_uvicorn(host: str, port: int, workers: int, access_log: bool, log_level: str) -> None:
    import uvicorn

    uvicorn.run(
        serving.TARGET,
        host=host,
        port=port,
        workers=workers,
        lifespan="off",  # marketplace/serving.py
        access_log=access_log,
        log_level=log_level,
        proxy_headers=True,
        forwarded_allow_ips=serving.forwarded_allow_ips(),
    )
