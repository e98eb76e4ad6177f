#!/usr/bin/env python
"""Which ASGI server ``manage.py serve`` runs: granian and uvicorn under the same simple load.

For each server and worker count, starts ``manage.py serve --server S --workers N`` (no agent)
and drives it with ``wrk`` (Debian package ``wrk``: a C load generator, so the client takes
little of the CPU the servers share) for ``-d`` seconds with ``-c`` connections over:

  GET /v1/predictions/<id>   token lookup (per-process cache) + one prediction row
  GET /                      the explore page: database reads and a template
  POST /v1/predictions       a create without ``Prefer: wait`` (no agent runs: the predictions
                             stay queued and are cancelled afterwards)

and prints requests/s, p50, p99 and the CPU time the server's processes (main and workers,
from psutil) spent per request. On a shared machine latency and throughput follow the
neighbours' load; CPU per request mostly does not, so that is the column that compares servers.
``--rounds`` interleaves the servers that many times and prints medians. Usage:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench REDIS_URL=redis://127.0.0.1:6379/14 \\
        .venv/bin/python bench/servers.py -d 5 -c 16 --workers 1 2 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import tempfile
from collections import defaultdict

import httpx
import psutil
from _env import prepare

prepare()

from _stack import Stack, setup  # noqa: E402

UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(url: str, seconds: float, connections: int, script: str) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as lua:
        lua.write(script)
        lua.flush()
        argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", "-s", lua.name]
        out = subprocess.run([*argv, url], capture_output=True, text=True, check=True).stdout
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])}  # type: ignore[index]
    for q in ("50", "99"):
        value, unit = re.search(rf"\s{q}%\s+([\d.]+)(us|ms|s)\b", out).groups()  # type: ignore[union-attr]
        result[f"p{q}"] = float(value) * UNITS[unit]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    result["non2xx"] = float(bad[1]) if bad else 0.0
    return result


def cpu_seconds(pid: int) -> float:
    """CPU time of ``pid`` and its descendants (the server's main process and its workers)."""
    total = 0.0
    main = psutil.Process(pid)
    for process in [main, *main.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def measured(pid: int, url: str, seconds: float, connections: int, script: str) -> dict[str, float]:
    """wrk's figures plus the server's CPU milliseconds per request."""
    before = cpu_seconds(pid)
    result = wrk(url, seconds, connections, script)
    requests = max(1.0, result["rps"] * seconds)
    result["cpu_ms"] = (cpu_seconds(pid) - before) * 1000 / requests
    return result


def lua(method: str, token: str, body: dict[str, object] | None = None) -> str:
    lines = [f'wrk.method = "{method}"', f'wrk.headers["Authorization"] = "Bearer {token}"']
    if body is not None:
        lines += ['wrk.headers["Content-Type"] = "application/json"']
        lines += [f"wrk.body = {json.dumps(json.dumps(body))}"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-d", type=float, default=10, help="seconds per run (default 10)")
    parser.add_argument("-c", type=int, default=16, help="connections (default 16)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--servers", nargs="+", default=["granian", "uvicorn"])
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds (medians)")
    args = parser.parse_args()

    token, versions = setup("hello")
    from django.core.management import call_command

    from marketplace.predictions.models import Prediction
    from marketplace.predictions.services import prediction_cancel

    call_command("collectstatic", "--no-input", verbosity=0)  # DEBUG off: hashed static names
    body = {"version": versions["hello"].pk, "input": {"text": "load"}}
    cells: dict[tuple[str, int], list[list[dict[str, float]]]] = defaultdict(list)
    loads: dict[tuple[str, int], list[float]] = defaultdict(list)
    for _ in range(args.rounds):
        for workers in args.workers:
            for server in args.servers:
                os.environ["WEB_SERVER"] = server
                stack = Stack(web_workers=workers, agent=False, log_name="servers")
                pid = stack.pid("web")
                try:
                    auth = {"Authorization": f"Bearer {token}"}
                    created = httpx.post(stack.base + "/v1/predictions", json=body, headers=auth)
                    prediction = created.json()["id"]
                    for _ in range(50):  # warm every worker's caches and code paths
                        httpx.get(f"{stack.base}/v1/predictions/{prediction}", headers=auth)
                        httpx.get(stack.base + "/")
                    loads[server, workers].append(os.getloadavg()[0])
                    runs = [
                        (f"/v1/predictions/{prediction}", lua("GET", token)),
                        ("/", 'wrk.method = "GET"\n'),
                        ("/v1/predictions", lua("POST", token, body)),
                    ]
                    cells[server, workers].append(
                        [measured(pid, stack.base + path, args.d, args.c, s) for path, s in runs]
                    )
                finally:
                    stack.stop()
                for queued in Prediction.objects.filter(status=Prediction.Status.STARTING):
                    prediction_cancel(queued)
    print(
        f"wrk -t1 -c{args.c} -d{args.d:g}s per cell, median of {args.rounds} interleaved round(s): "
        "requests/s, p50 / p99 ms, server CPU ms per request; load = 1-min load average"
    )
    print(f"{'server':10}{'workers':>8}{'load':>6}  {'GET /v1/predictions/<id>':>34}  "
          f"{'GET / (explore)':>34}  {'POST /v1/predictions':>34}")  # fmt: skip
    for (server, workers), rounds in cells.items():
        text = ""
        for kind in range(3):
            cell = {
                key: statistics.median(r[kind][key] for r in rounds)
                for key in ("rps", "p50", "p99", "cpu_ms", "non2xx")
            }
            text += f"  {cell['rps']:6.0f}/s {cell['p50']:6.0f} / {cell['p99']:5.0f}"
            text += f" {cell['cpu_ms']:5.1f} cpu"
            text += f" ({cell['non2xx']:.0f} non-2xx)" if cell["non2xx"] else ""
        load = statistics.median(loads[server, workers])
        print(f"{server:10}{workers:8}{load:6.1f}{text}")


if __name__ == "__main__":
    main()
