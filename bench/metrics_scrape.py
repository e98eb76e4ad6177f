#!/usr/bin/env python
"""How long a /metrics scrape takes as the predictions table grows.

What has ended is rolled up (marketplace/rollups), so a scrape reads the rollup plus what
ended since; its cost should not grow with history. This seeds N finished predictions (bulk
inserts, timings spread over 0.01-100 s) into the database in the environment (DATABASE_URL;
SQLite under var/bench/ otherwise), rebuilds the rollups (the rows carry past timestamps),
then times the exposition R times and prints p50/max. Usage:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench \\
        .venv/bin/python bench/metrics_scrape.py -n 100000
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import timedelta

from _env import ROOT, prepare

prepare()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=100_000, help="predictions to have (default 1e5)")
    parser.add_argument("-r", type=int, default=20, help="scrapes to time (default 20)")
    args = parser.parse_args()

    import django

    django.setup()
    from django.core.management import call_command
    from django.utils import timezone

    from marketplace.accounts.models import User
    from marketplace.catalog.services import version_publish_local
    from marketplace.metrics import exposition
    from marketplace.predictions.models import Prediction
    from marketplace.redisconn import ensure_embedded_redis

    call_command("migrate", verbosity=0)
    ensure_embedded_redis()
    user, _ = User.objects.get_or_create(username="bench")
    version, _ = version_publish_local(
        path=ROOT / "examples" / "hello", owner=user.account, name="hello"
    )
    missing = args.n - Prediction.objects.count()
    rng = random.Random(1)
    now = timezone.now()
    while missing > 0:
        batch = []
        for _ in range(min(missing, 5000)):
            created = now - timedelta(seconds=rng.uniform(0, 86400 * 30))
            started = created + timedelta(seconds=rng.lognormvariate(-2, 2))
            batch.append(
                Prediction(
                    model=version.model,
                    version=version,
                    account=user.account,
                    hardware_id=version.model.default_hardware_id,
                    status=rng.choice(["succeeded"] * 8 + ["failed", "canceled"]),
                    input={"text": "x"},
                    output="hello x",
                    created_at=created,
                    started_at=started,
                    completed_at=started + timedelta(seconds=rng.lognormvariate(-1, 1.5)),
                )
            )
        Prediction.objects.bulk_create(batch)
        missing -= len(batch)
    total = Prediction.objects.count()
    # The seeded rows carry past timestamps, which a roll-up never looks back for.
    call_command("rollup", "--rebuild")
    exposition()  # warm
    times = []
    for _ in range(args.r):
        started_at = time.perf_counter()
        body = exposition()
        times.append((time.perf_counter() - started_at) * 1000)
    print(f"predictions: {total}, exposition: {len(body)} bytes")
    print(f"scrape p50 {statistics.median(times):.1f} ms, max {max(times):.1f} ms ({args.r} runs)")


if __name__ == "__main__":
    main()
