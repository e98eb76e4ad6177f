#!/usr/bin/env python
"""What the official Python client (replicate 1.0.7) adds over the same raw HTTP request.

Starts a stack (``manage.py serve`` + an agent, bench/_stack.py), publishes examples/hello as
``bench/hello``, warms it, then times N sequential predictions per way, the ways taking turns
call by call (so the machine's load falls on every way alike), and prints p50/p99 of each:

  raw model      httpx POST /v1/models/bench/hello/predictions, Prefer: wait (keep-alive)
  run(model)     client.run("bench/hello"): the same request, plus the client's own work
  raw version    httpx POST /v1/predictions {"version": id}, Prefer: wait
  create         client.predictions.create(version=id, wait=True)
  run(o/n:id)    client.run("bench/hello:<id>"): the create above, then
                 GET /v1/models/bench/hello/versions/<id> (the client reads the version's
                 schema to decide whether the output is an iterator)
  raw GET ver.   httpx GET /v1/models/bench/hello/versions/<id>

and the client's extra time over the matching raw request. Usage:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench REDIS_URL=redis://127.0.0.1:6379/14 \\
        .venv/bin/python bench/client_overhead.py -n 150
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import httpx
from _env import percentile, prepare

prepare(INSTANCE_IDLE_TIMEOUT="600")

from _stack import Stack, setup  # noqa: E402

PAUSE = 0.003  # Cog frees its slot about a millisecond after it answers (bench/overhead.py)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=200, help="calls per way (default 200)")
    args = parser.parse_args()

    token, versions = setup("hello")
    version = versions["hello"].pk
    stack = Stack(web_workers=1, agent=True, log_name="client-overhead")
    try:
        import replicate

        client = replicate.Client(api_token=token, base_url=stack.base)
        raw = httpx.Client(
            base_url=stack.base, headers={"Authorization": f"Bearer {token}"}, timeout=90
        )
        data = {"text": "bench"}
        wait = {"Prefer": "wait"}

        def raw_model() -> Any:
            response = raw.post(
                "/v1/models/bench/hello/predictions", json={"input": data}, headers=wait
            )
            assert response.json()["output"] == "hello bench", response.text

        def raw_version() -> Any:
            body = {"version": version, "input": data}
            response = raw.post("/v1/predictions", json=body, headers=wait)
            assert response.json()["output"] == "hello bench", response.text

        def raw_get_version() -> Any:
            response = raw.get(f"/v1/models/bench/hello/versions/{version}")
            assert response.status_code == 200, response.text

        def run_model() -> Any:
            assert client.run("bench/hello", input=data) == "hello bench"

        def create() -> Any:
            prediction = client.predictions.create(version=version, input=data, wait=True)
            assert prediction.output == "hello bench"

        def run_version() -> Any:
            assert client.run(f"bench/hello:{version}", input=data) == "hello bench"

        ways: dict[str, Callable[[], Any]] = {
            "raw model": raw_model,
            "run(model)": run_model,
            "raw version": raw_version,
            "create": create,
            "run(o/n:id)": run_version,
            "raw GET ver.": raw_get_version,
        }
        for way in ways.values():  # boot the instance, warm both sides' code paths
            for _ in range(10):
                time.sleep(PAUSE)
                way()
        timings: dict[str, list[float]] = defaultdict(list)
        for _ in range(args.n):  # one call of each way in turn: neighbours' load hits all alike
            for name, way in ways.items():
                time.sleep(PAUSE)
                started = time.perf_counter()
                way()
                timings[name].append((time.perf_counter() - started) * 1000)
        load = os.getloadavg()
        print(
            f"client overhead: {args.n} sequential calls per way, the ways taking turns; "
            f"load average {load[0]:.1f} / {load[1]:.1f}"
        )
        print(f"{'':14}{'p50 ms':>9}{'p99 ms':>9}")
        for name, values in timings.items():
            print(f"{name:14}{percentile(values, 0.5):9.2f}{percentile(values, 0.99):9.2f}")
        print("client's extra time: p50 difference, and median of the call-by-call differences")
        for way, base in (
            ("run(model)", "raw model"),
            ("create", "raw version"),
            ("run(o/n:id)", "raw version"),
        ):
            p50 = percentile(timings[way], 0.5) - percentile(timings[base], 0.5)
            paired = [a - b for a, b in zip(timings[way], timings[base], strict=True)]
            print(f"  {way:12} - {base:12} {p50:7.2f} ms {statistics.median(paired):7.2f} ms")
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
