#!/usr/bin/env python
"""Load: predictions per second end to end, and catalog page latency under concurrency.

Starts its own stack (``manage.py serve``, and for ``predict`` a ``manage.py agent``) on the
settings in the environment, like bench/overhead.py (``DEBUG`` off, rate limits lifted for the
caller).

  predict   ``-n`` predictions of ``examples/hello-concurrent`` (8 slots per instance) created by
            ``-c`` concurrent asyncio clients without waiting; each client also GETs a recent
            prediction after every create (the create+get mix). Prints create and get latency,
            creates/s, end-to-end predictions/s (first created → last completed, from the
            database), how many were lost (not succeeded after the run), and the CPU time
            each part of the stack spent per prediction.
  catalog   ``-c`` concurrent clients for ``-d`` seconds over the explore page, search,
            collections, a collection, model pages and their tabs of random public models,
            profiles, ``GET /v1/models``, ``GET /v1/search`` and ``QUERY /v1/models`` (the API
            with a token, the site anonymously); prints p50/p95/p99 per kind. Seed a large
            catalog first with bench/seed_large.py.

    export REDIS_URL=redis://127.0.0.1:6379/14
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench .venv/bin/python bench/load.py predict
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_large \\
        .venv/bin/python bench/load.py catalog -d 30 -c 8
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
from _env import ROOT, percentile, prepare

prepare(INSTANCE_IDLE_TIMEOUT="600")

from workers.runtimes.base import free_port  # noqa: E402  (after sys.path is set)


class Stack:
    """``manage.py serve`` (``--web-workers`` processes) and optionally an agent."""

    def __init__(self, web_workers: int, agent: bool) -> None:
        from django.conf import settings

        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "REDIS_URL": settings.REDIS_URL, "PUBLIC_URL": self.base}
        Path(settings.VAR_DIR).mkdir(parents=True, exist_ok=True)
        log = open(Path(settings.VAR_DIR) / "load.log", "ab")  # noqa: SIM115
        # The production web command (WEB_SERVER picks granian or uvicorn).
        serve = [sys.executable, "manage.py", "serve", "--bind", f"127.0.0.1:{self.port}"]
        serve += ["--workers", str(web_workers), "--log-level", "warning"]
        self.processes = [subprocess.Popen(serve, cwd=ROOT, env=env, stdout=log, stderr=log)]
        if agent:
            argv = [sys.executable, "manage.py", "agent", "--host-name", "bench-load"]
            self.processes.append(subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=log))
        for _ in range(200):
            try:
                httpx.get(self.base + "/v1/hardware", timeout=2)
                return
            except httpx.TransportError:
                time.sleep(0.1)

    def stop(self) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def cpu_seconds(stack: Stack) -> dict[str, float]:
    """CPU time (user + system) used so far by each part of the stack: the web server (with its
    workers), the agent, its Cog servers (the agent's children), PostgreSQL's and Redis's
    processes on this machine, and this process (the load clients)."""
    import psutil

    def used(processes: list[psutil.Process]) -> float:
        total = 0.0
        for process in processes:
            try:
                times = process.cpu_times()
                total += times.user + times.system + times.children_user + times.children_system
            except psutil.NoSuchProcess:
                pass
        return total

    def tree(pid: int) -> float:
        root = psutil.Process(pid)
        return used([root, *root.children(recursive=True)])

    def named(name: str) -> float:
        total = 0.0
        for process in psutil.process_iter(["name"]):
            if process.info["name"] and process.info["name"].startswith(name):
                try:
                    times = process.cpu_times()
                    total += times.user + times.system
                except psutil.NoSuchProcess:
                    pass
        return total

    parts = {"web": tree(stack.processes[0].pid)}
    if len(stack.processes) > 1:
        agent = psutil.Process(stack.processes[1].pid)
        parts["agent"] = used([agent])
        parts["Cog"] = used(agent.children(recursive=True))
    parts["postgres"] = named("postgres")
    parts["redis"] = named("redis-server")
    me = psutil.Process().cpu_times()
    parts["load clients"] = me.user + me.system
    return parts


def report(title: str, timings: dict[str, list[float]]) -> None:
    print(title)
    print(f"{'':32}{'n':>7}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}")
    for name, values in timings.items():
        print(
            f"{name:32}{len(values):7}{percentile(values, 0.5):10.1f}"
            f"{percentile(values, 0.95):10.1f}{percentile(values, 0.99):10.1f}"
        )


async def _predict_load(base: str, token: str, version: str, n: int, c: int) -> dict[str, Any]:
    timings: dict[str, list[float]] = defaultdict(list)
    ids: list[str] = []
    errors: dict[str, int] = defaultdict(int)
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=c * 2)
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60, limits=limits) as api:
        remaining = [n]

        async def client(index: int) -> None:
            rng = random.Random(index)
            while remaining[0] > 0:
                remaining[0] -= 1
                body = {"version": version, "input": {"text": f"c{index}"}}
                started = time.perf_counter()
                response = await api.post("/v1/predictions", json=body)
                timings["POST /v1/predictions"].append((time.perf_counter() - started) * 1000)
                if response.status_code != 201:
                    errors[str(response.status_code)] += 1
                    continue
                ids.append(response.json()["id"])
                recent = ids[-min(len(ids), 50) :]
                started = time.perf_counter()
                got = await api.get(f"/v1/predictions/{rng.choice(recent)}")
                timings["GET /v1/predictions/{id}"].append((time.perf_counter() - started) * 1000)
                if got.status_code != 200:
                    errors[f"get {got.status_code}"] += 1

        started = time.monotonic()
        await asyncio.gather(*(client(i) for i in range(c)))
        elapsed = time.monotonic() - started
    return {"timings": timings, "ids": ids, "errors": dict(errors), "elapsed": elapsed}


def predict(args: argparse.Namespace) -> None:
    from django.db.models import Max, Min

    from marketplace.accounts.models import ApiToken, User
    from marketplace.catalog.services import version_publish_local
    from marketplace.predictions.models import Prediction

    user, _ = User.objects.get_or_create(username="bench")
    _, token = ApiToken.create_for(user, name="bench-load")
    version, _ = version_publish_local(
        path=ROOT / "examples" / "hello-concurrent", owner=user.account, name="hello-concurrent"
    )
    stack = Stack(args.web_workers, agent=True)
    try:
        warm = httpx.post(
            stack.base + "/v1/predictions",
            json={"version": version.pk, "input": {"text": "warm"}},
            headers={"Authorization": f"Bearer {token}", "Prefer": "wait"},
            timeout=120,
        )
        assert warm.json()["status"] == "succeeded", warm.text
        cpu_before = cpu_seconds(stack)
        result = asyncio.run(_predict_load(stack.base, token, version.pk, args.n, args.c))
        ids = result["ids"]
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            active = Prediction.objects.filter(pk__in=ids, status__in=("starting", "processing"))
            if not active.exists():
                break
            time.sleep(0.5)
        cpu_used = {k: v - cpu_before[k] for k, v in cpu_seconds(stack).items()}
        done = Prediction.objects.filter(pk__in=ids)
        span = done.aggregate(first=Min("created_at"), last=Max("completed_at"))
        seconds = (span["last"] - span["first"]).total_seconds()
        succeeded = done.filter(status="succeeded").count()
        report(
            f"predict: {args.n} creates by {args.c} clients, create+get mix, "
            f"{args.web_workers} web worker(s), examples/hello-concurrent (8 slots)",
            result["timings"],
        )
        print(f"creates/s (API):            {len(ids) / result['elapsed']:8.1f}")
        print(f"end to end predictions/s:   {succeeded / seconds:8.1f}  ({seconds:.1f} s)")
        print(f"succeeded {succeeded} of {len(ids)} created; lost {len(ids) - succeeded}; "
              f"refused {result['errors']}")  # fmt: skip
        # Where the two cores went: CPU ms per prediction (create + GET + run), by process.
        per = {k: 1000 * v / max(1, len(ids)) for k, v in cpu_used.items()}
        print("CPU ms per prediction: " + ", ".join(f"{k} {v:.1f}" for k, v in per.items()))
        print(f"  total {sum(per.values()):.1f} ms (two cores give {2000 / 150:.1f} at 150/s)")
    finally:
        stack.stop()


async def _catalog_load(
    base: str, token: str, paths: list[tuple[str, str, str]], c: int, seconds: float
) -> Any:
    timings: dict[str, list[float]] = defaultdict(list)
    failures: dict[str, int] = defaultdict(int)
    api_headers = {"Authorization": f"Bearer {token}", "Content-Type": "text/plain"}
    async with httpx.AsyncClient(base_url=base, timeout=60) as web:
        stop_at = time.monotonic() + seconds
        kinds = sorted({kind for kind, _, _ in paths})
        by_kind = {k: [(m, p) for kind, m, p in paths if kind == k] for k in kinds}

        async def client(index: int) -> None:
            rng = random.Random(index)
            while time.monotonic() < stop_at:
                # Each kind of page as often as the others; a random model for model pages.
                kind = rng.choice(kinds)
                method, path = rng.choice(by_kind[kind])
                headers = api_headers if path.startswith("/v1/") else None
                # QUERY /v1/models: the search text is the body (the path carries it after '#').
                path, _, body = path.partition("#")
                started = time.perf_counter()
                response = await web.request(method, path, headers=headers, content=body or None)
                timings[kind].append((time.perf_counter() - started) * 1000)
                if response.status_code != 200:
                    failures[f"{kind} {response.status_code}"] += 1

        await asyncio.gather(*(client(i) for i in range(c)))
    return timings, failures


# Search words: what the seeded names and descriptions are made of, plus a typo.
SEARCHES = ("diffusion", "upscale photo", "whisper", "anime style", "difusion", "segment")


def catalog(args: argparse.Namespace) -> None:
    from marketplace.accounts.models import ApiToken, User
    from marketplace.catalog.models import Collection, Model
    from marketplace.predictions.models import Prediction

    models = list(
        Model.objects.filter(visibility="public")
        .order_by("?")
        .values_list("owner__username", "name")[:300]
    )
    slugs = list(Collection.objects.values_list("slug", flat=True)[:50])
    total_models = Model.objects.count()
    total_predictions = Prediction.objects.count()
    user, _ = User.objects.get_or_create(username="bench")
    _, token = ApiToken.create_for(user, name="bench-catalog")
    stack = Stack(args.web_workers, agent=False)
    get = "GET"
    paths = [("explore /", get, "/")]
    paths += [("search /search?q=", get, f"/search?q={q}") for q in SEARCHES]
    paths += [("collections", get, "/collections")]
    paths += [("collection /collections/<slug>", get, f"/collections/{s}") for s in slugs]
    paths += [("model page /<owner>/<name>", get, f"/{o}/{n}") for o, n in models]
    paths += [("API tab /<owner>/<name>/api", get, f"/{o}/{n}/api") for o, n in models[:50]]
    paths += [("versions tab", get, f"/{o}/{n}/versions") for o, n in models[:50]]
    paths += [("examples tab", get, f"/{o}/{n}/examples") for o, n in models[:50]]
    paths += [("profile /<owner>", get, f"/{o}") for o, _ in models[:50]]
    paths += [("GET /v1/models", get, "/v1/models")]
    paths += [("GET /v1/search", get, f"/v1/search?query={q}") for q in SEARCHES]
    paths += [("QUERY /v1/models", "QUERY", f"/v1/models#{q}") for q in SEARCHES]
    try:
        for _, method, path in paths[:30]:  # warm the processes
            target, _, body = path.partition("#")
            headers = {"Authorization": f"Bearer {token}"} if target.startswith("/v1/") else {}
            httpx.request(method, stack.base + target, headers=headers, content=body, timeout=60)
        timings, failures = asyncio.run(_catalog_load(stack.base, token, paths, args.c, args.d))
        report(
            f"catalog: {args.c} client(s) for {args.d:g} s, {args.web_workers} web worker(s), "
            f"{total_models} models, {total_predictions} predictions",
            dict(sorted(timings.items())),
        )
        if failures:
            print(f"non-200 answers: {dict(failures)}")
    finally:
        stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", choices=["predict", "catalog"])
    parser.add_argument("-n", type=int, default=2000, help="predictions (predict)")
    parser.add_argument("-c", type=int, default=16, help="concurrent clients")
    parser.add_argument("-d", type=float, default=30, help="seconds (catalog)")
    parser.add_argument("--web-workers", type=int, default=1)
    args = parser.parse_args()

    import django

    django.setup()
    from django.core.management import call_command

    from marketplace.redisconn import ensure_embedded_redis

    call_command("migrate", verbosity=0)
    call_command("collectstatic", "--no-input", verbosity=0)  # DEBUG off: hashed static names
    ensure_embedded_redis()
    predict(args) if args.mode == "predict" else catalog(args)


if __name__ == "__main__":
    main()
