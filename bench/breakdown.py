#!/usr/bin/env python
"""Where the time of one warm prediction goes, phase by phase, on a production-like stack.

Starts web and agent (bench/_stack.py), warms ``examples/hello``, then runs ``-n`` sequential
predictions with ``Prefer: wait`` and splits each into phases from the client's clock and the
timestamps the platform stores (same machine, same clock):

  create      the request leaves the client → the row's ``created_at`` (auth, parsing,
              validation, everything before the insert)
  queue       ``created_at`` → ``started_at``: insert and commit, queueing, the slot waking,
              popping and claiming
  dispatch    ``started_at`` → ``completed_at`` minus Cog's own ``predict_time``: the PUT to
              Cog, its webhooks back to the agent, and the finishing transaction
  cog         Cog's ``predict_time``
  response    ``completed_at`` → the answer reaches the client: the done event, the waiting
              request waking, reading and rendering the prediction

With ``--profile`` (needs ``pip install py-spy``) it also samples the web and agent processes
during the run and prints the functions they spent the most time in (inclusive).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench REDIS_URL=redis://127.0.0.1:6379/7 \\
        .venv/bin/python bench/breakdown.py -n 200 [--web-workers 2] [--profile]
"""

from __future__ import annotations

import argparse
import collections
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _env import percentile, prepare

prepare(INSTANCE_IDLE_TIMEOUT="600")

from _stack import Stack, setup  # noqa: E402

# Frames counted: ours, and the libraries the hot path spends its time in.
OURS = ("/marketplace/", "/workers/", "/django/", "/rest_framework/", "/psycopg/", "/redis/")


def top_functions(path: Path, count: int) -> list[tuple[float, str]]:
    """The functions with the most inclusive samples in a py-spy raw (folded) profile."""
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        if not samples.isdigit():
            continue
        total += int(samples)
        seen = set()
        for frame in stack.split(";"):
            name = frame.split(" (")[0] + " (" + frame.rsplit("/", 1)[-1].split(":")[0] + ")"
            if name not in seen and any(part in frame for part in OURS):
                seen.add(name)
                inclusive[name] += int(samples)
    return [(100 * n / max(1, total), name) for name, n in inclusive.most_common(count)]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=200)
    parser.add_argument("--web-workers", type=int, default=1)
    parser.add_argument("--profile", action="store_true", help="sample web and agent with py-spy")
    args = parser.parse_args()
    token, versions = setup("hello")
    version = versions["hello"]
    from marketplace.predictions.models import Prediction

    stack = Stack(web_workers=args.web_workers, log_name="breakdown")
    spies: list[tuple[str, Path, subprocess.Popen[bytes]]] = []
    try:
        api = httpx.Client(
            base_url=stack.base, headers={"Authorization": f"Bearer {token}"}, timeout=90
        )
        body = {"version": version.pk, "input": {"text": "bench"}}
        for _ in range(30):
            response = api.post("/v1/predictions", json=body, headers={"Prefer": "wait"})
            assert response.json()["status"] == "succeeded", response.text
        if args.profile:
            spy = shutil.which("py-spy") or shutil.which("py-spy", path=Path(sys.executable).parent)
            assert spy, "--profile needs py-spy (pip install py-spy)"
            out = Path(tempfile.mkdtemp())
            for name in ("web", "agent"):
                path = out / f"{name}.txt"
                argv = [spy, "record", "-r", "250", "-f", "raw", "-o", str(path), "--subprocesses"]
                argv += ["--full-filenames"]
                argv += ["--pid", str(stack.pid(name))]
                process = subprocess.Popen(
                    argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
                spies.append((name, path, process))
            time.sleep(1)
        sent: dict[str, tuple[float, float]] = {}
        for _ in range(args.n):
            time.sleep(0.003)
            started = time.time()
            response = api.post("/v1/predictions", json=body, headers={"Prefer": "wait"})
            received = time.time()
            assert response.json()["status"] == "succeeded", response.text
            sent[response.json()["id"]] = (started, received)
    finally:
        for _, _, process in spies:
            process.send_signal(signal.SIGINT)
            process.wait()
        stack.stop()
    phases: dict[str, list[float]] = collections.defaultdict(list)
    for p in Prediction.objects.filter(pk__in=sent):
        started, received = sent[p.pk]
        assert p.started_at is not None and p.completed_at is not None
        cog = float(p.metrics.get("predict_time") or 0)
        created, claimed, done = (
            t.timestamp() for t in (p.created_at, p.started_at, p.completed_at)
        )
        phases["create"].append(created - started)
        phases["queue"].append(claimed - created)
        phases["dispatch"].append(done - claimed - cog)
        phases["cog"].append(cog)
        phases["response"].append(received - done)
        phases["total"].append(received - started)
    print(f"breakdown of {len(sent)} warm predictions (ms): p50, p90")
    for name, values in phases.items():
        ms = [v * 1000 for v in values]
        print(f"  {name:10}{percentile(ms, 0.5):9.2f}{percentile(ms, 0.9):9.2f}")
    for name, path, _ in spies:
        print(f"{name}: where its samples were (inclusive %, our code)")
        for share, function in top_functions(path, 25):
            print(f"  {share:5.1f}%  {function}")


if __name__ == "__main__":
    main()
