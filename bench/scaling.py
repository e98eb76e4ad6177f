#!/usr/bin/env python
"""Autoscaling: how fast a burst brings a deployment to its maximum, and queue waits under load.

Starts its own stack (uvicorn web + one `manage.py agent`, whose autoscaler thread leads) on the
settings in the environment (DATABASE_URL / REDIS_URL if set, otherwise SQLite and the embedded
Redis under var/bench/), publishes tests/fixtures/cog/sleepy (sleeps `seconds`, one slot) and
creates a deployment with min 0 and max M instances, then:

  burst   N predictions at once on the cold deployment: seconds from the first create until the
          first and until all M instances are ready, and until the last prediction completes
  steady  after the burst has drained and the instances idled out, predictions arrive at random
          (Poisson) at a rate of U * capacity (capacity = M / seconds per prediction) for D
          seconds: p50/p99 of the queue wait (started_at - created_at), and of run time

Usage:

    .venv/bin/python bench/scaling.py [--burst 40] [--max 3] [--seconds 0.5]
                                      [--utilisation 0.6] [--duration 60]
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from _env import ROOT, percentile, prepare

prepare()

from workers.runtimes.base import free_port  # noqa: E402  (after sys.path is set)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--burst", type=int, default=40, help="predictions in the burst")
    parser.add_argument("--max", type=int, default=3, help="the deployment's max_instances")
    parser.add_argument("--seconds", type=float, default=0.5, help="run time of one prediction")
    parser.add_argument("--utilisation", type=float, default=0.6, help="steady load / capacity")
    parser.add_argument("--duration", type=float, default=60, help="seconds of steady load")
    parser.add_argument("--idle-timeout", type=int, default=5, help="the deployment's")
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from marketplace.accounts.models import ApiToken, User
    from marketplace.catalog.services import version_publish_local
    from marketplace.deployments.models import Deployment, Instance
    from marketplace.predictions.models import Prediction
    from marketplace.redisconn import ensure_embedded_redis

    call_command("migrate", verbosity=0)
    ensure_embedded_redis()
    user, _ = User.objects.get_or_create(username="bench")
    _, token = ApiToken.create_for(user, name="bench")
    version, _ = version_publish_local(
        path=ROOT / "tests" / "fixtures" / "cog" / "sleepy", owner=user.account, name="sleepy"
    )
    name = f"scaling-{secrets.token_hex(3)}"

    port = free_port()
    env = {**os.environ, "REDIS_URL": settings.REDIS_URL, "PUBLIC_URL": f"http://127.0.0.1:{port}"}
    Path(settings.VAR_DIR).mkdir(parents=True, exist_ok=True)
    log = open(Path(settings.VAR_DIR) / "bench-scaling.log", "ab")  # noqa: SIM115
    web = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "marketplace.asgi:application", "--port", str(port),
         "--no-access-log", "--lifespan", "off", "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=log, stderr=log,
    )  # fmt: skip
    agent = subprocess.Popen(
        [sys.executable, "manage.py", "agent", "--host-name", "bench-scaling",
         "--max-instances", str(args.max + 1)],
        cwd=ROOT, env=env, stdout=log, stderr=log,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=90)
        for _ in range(100):
            try:
                api.get("/")
                break
            except httpx.TransportError:
                time.sleep(0.1)
        created = api.post(
            "/v1/deployments",
            json={"name": name, "model": "bench/sleepy", "version": version.pk,
                  "hardware": "cpu", "min_instances": 0, "max_instances": args.max,
                  "idle_timeout": args.idle_timeout},
        )  # fmt: skip
        assert created.status_code == 201, created.text
        deployment = Deployment.objects.get(owner=user.account, name=name)
        url = f"/v1/deployments/bench/{name}/predictions"
        body = {"input": {"seconds": args.seconds}}

        # --- burst --------------------------------------------------------------------------
        t0 = time.time()
        burst = [api.post(url, json=body).json()["id"] for _ in range(args.burst)]
        posted = time.time() - t0

        def ready_times() -> list[float]:
            return sorted(
                i.ready_at.timestamp() - t0
                for i in Instance.objects.filter(deployment=deployment, ready_at__isnull=False)
            )

        while len(ready_times()) < args.max and time.time() - t0 < 300:
            time.sleep(0.05)
        ready = ready_times()
        while Prediction.objects.filter(pk__in=burst, completed_at__isnull=True).exists():
            time.sleep(0.1)
        done = max(
            p.completed_at.timestamp() for p in Prediction.objects.filter(pk__in=burst)
        ) - t0  # fmt: skip
        # Let the burst's instances idle out, so the steady phase starts cold as well.
        while Instance.objects.filter(deployment=deployment, state__in=Instance.LIVE).exists():
            time.sleep(0.2)

        # --- steady load ---------------------------------------------------------------------
        rate = args.utilisation * args.max / args.seconds
        steady: list[str] = []
        rng = random.Random(7)
        started = time.time()
        next_at = started
        while next_at - started < args.duration:
            time.sleep(max(0.0, next_at - time.time()))
            steady.append(api.post(url, json=body).json()["id"])
            next_at += rng.expovariate(rate)
        while Prediction.objects.filter(pk__in=steady, completed_at__isnull=True).exists():
            time.sleep(0.2)
        rows = list(Prediction.objects.filter(pk__in=steady))
        waits = [(p.started_at - p.created_at).total_seconds() for p in rows if p.started_at]
        runs = [(p.completed_at - p.started_at).total_seconds() for p in rows if p.started_at]
        failed = sum(1 for p in rows if p.status != "succeeded")
        most = Instance.objects.filter(deployment=deployment).count()

        database = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
        redis_kind = "embedded" if settings.REDIS_EMBEDDED else "external"
        print(
            f"scaling: deployment max_instances={args.max}, {args.seconds} s per prediction "
            f"({database}, {redis_kind} redis)"
        )
        print(f"burst of {args.burst} (posted in {posted:.2f} s):")
        print(f"  first instance ready   {ready[0]:7.2f} s")
        print(f"  all {args.max} instances ready  {ready[args.max - 1]:7.2f} s")
        print(f"  last prediction done   {done:7.2f} s")
        print(
            f"steady load: {len(rows)} predictions over {args.duration:g} s at {rate:.2f}/s "
            f"({args.utilisation:.0%} of capacity), {failed} not succeeded, "
            f"{most} instances started in all"
        )
        print(f"{'':14}{'p50 s':>9}{'p99 s':>9}{'max s':>9}")
        for label, values in (("queue wait", waits), ("run", runs)):
            print(
                f"{label:14}{percentile(values, 0.5):9.3f}{percentile(values, 0.99):9.3f}"
                f"{max(values):9.3f}"
            )
    finally:
        for process in (agent, web):
            process.send_signal(signal.SIGTERM)
        for process in (agent, web):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    main()
