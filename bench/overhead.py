#!/usr/bin/env python
"""Platform overhead over a direct Cog call, for a warm trivial model.

Starts its own stack (`manage.py serve` web + `manage.py agent`) on the settings in the environment
(DATABASE_URL / REDIS_URL if set, otherwise SQLite and the embedded Redis under var/bench/),
publishes examples/hello, warms one instance, then times N sequential predictions two ways:

  platform  POST /v1/predictions with `Prefer: wait` (the API holds the request on the
            prediction's event stream until `done`), over a keep-alive connection
  client    the official Python client (replicate 1.0.7), `run("bench/hello")`: one
            POST /v1/models/bench/hello/predictions with `Prefer: wait`
  direct    POST /predictions to the same warm Cog server the platform uses

and prints p50/p99 of each and of the difference. Usage:

    .venv/bin/python bench/overhead.py [-n 300]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
from _env import ROOT, percentile, prepare

prepare(INSTANCE_IDLE_TIMEOUT="600")

from workers.runtimes.base import free_port  # noqa: E402  (after sys.path is set)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=300, help="predictions per side (default 300)")
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from marketplace.accounts.models import ApiToken, User
    from marketplace.catalog.services import version_publish_local
    from marketplace.deployments.models import Instance
    from marketplace.redisconn import ensure_embedded_redis

    call_command("migrate", verbosity=0)
    ensure_embedded_redis()
    user, _ = User.objects.get_or_create(username="bench")
    _, token = ApiToken.create_for(user, name="bench")
    version, _ = version_publish_local(
        path=ROOT / "examples" / "hello", owner=user.account, name="hello"
    )

    port = free_port()
    env = {**os.environ, "REDIS_URL": settings.REDIS_URL, "PUBLIC_URL": f"http://127.0.0.1:{port}"}
    Path(settings.VAR_DIR).mkdir(parents=True, exist_ok=True)
    log = open(Path(settings.VAR_DIR) / "bench.log", "ab")  # noqa: SIM115
    # The production web command (WEB_SERVER picks granian or uvicorn; one worker).
    serve = [sys.executable, "manage.py", "serve", "--bind", f"127.0.0.1:{port}"]
    serve += ["--workers", "1", "--log-level", "warning"]
    web = subprocess.Popen(serve, cwd=ROOT, env=env, stdout=log, stderr=log)
    agent = subprocess.Popen(
        [sys.executable, "manage.py", "agent", "--host-name", "bench"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=log,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=90)
        body = {"version": version.pk, "input": {"text": "bench"}}
        for _ in range(100):
            try:
                api.get("/")
                break
            except httpx.TransportError:
                time.sleep(0.1)
        # Warm up: boot the instance and the code paths on both sides.
        for _ in range(20):
            response = api.post("/v1/predictions", json=body, headers={"Prefer": "wait"})
            assert response.json()["status"] == "succeeded", response.text
        instance = Instance.objects.filter(version=version, state=Instance.State.READY).latest(
            "ready_at"
        )
        cog = httpx.Client(base_url=instance.url, timeout=30)
        # Cog answers a sync prediction a moment (~1 ms) before it frees the slot, so back-to-back
        # calls would meet 409s. Both sides get the same untimed pause between calls.
        pause = 0.003
        time.sleep(0.5)

        def direct_call() -> None:
            while (
                response := cog.post("/predictions", json={"input": body["input"]})
            ).status_code == 409:
                pass
            response.raise_for_status()

        # Phases, not interleaved: the two sides share the Cog server's single slot.
        direct: list[float] = []
        for _ in range(args.n + 20):
            time.sleep(pause)
            started = time.perf_counter()
            direct_call()
            direct.append((time.perf_counter() - started) * 1000)
        direct = direct[20:]
        platform: list[float] = []
        for _ in range(args.n):
            time.sleep(pause)
            started = time.perf_counter()
            response = api.post("/v1/predictions", json=body, headers={"Prefer": "wait"})
            platform.append((time.perf_counter() - started) * 1000)
            assert response.json()["status"] == "succeeded", response.text

        import replicate

        client = replicate.Client(api_token=token, base_url=base)
        official: list[float] = []
        for _ in range(args.n):
            time.sleep(pause)
            started = time.perf_counter()
            output = client.run("bench/hello", input=body["input"])
            official.append((time.perf_counter() - started) * 1000)
            assert output == "hello bench", output

        database = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
        redis_kind = "embedded" if settings.REDIS_EMBEDDED else "external"
        print(
            f"overhead: {args.n} sequential predictions of examples/hello "
            f"({database}, {redis_kind} redis)"
        )
        print(f"{'':10}{'p50 ms':>10}{'p99 ms':>10}{'mean ms':>10}")
        for name, values in (("platform", platform), ("client", official), ("direct", direct)):
            print(
                f"{name:10}{percentile(values, 0.5):10.2f}{percentile(values, 0.99):10.2f}"
                f"{statistics.mean(values):10.2f}"
            )
        print(
            f"{'overhead':10}{percentile(platform, 0.5) - percentile(direct, 0.5):10.2f}"
            f"{percentile(platform, 0.99) - percentile(direct, 0.99):10.2f}"
            f"{statistics.mean(platform) - statistics.mean(direct):10.2f}"
        )
    finally:
        for process in (agent, web):
            process.send_signal(signal.SIGTERM)
        for process in (agent, web):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    main()
