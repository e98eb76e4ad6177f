#!/usr/bin/env python
"""Fill a PostgreSQL database with a large catalog: accounts, 10k models (one version each) and
1M finished predictions, for the catalog and model page figures of bench/load.py.

Rows go in with ``COPY`` (psycopg), not through the ORM, so a million predictions take about a
minute. Run against a database of its own (it migrates it first); idempotent per ``--tag``: a
second run with the same tag adds nothing.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_large \\
        .venv/bin/python bench/seed_large.py --models 10000 --predictions 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketplace.settings")
os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("VAR_DIR", str(ROOT / "var" / "bench"))

WORDS = [
    *("diffusion", "llama", "whisper", "vision", "upscale", "caption", "segment", "depth"),
    *("music", "speech", "video", "face", "style", "sketch", "anime", "photo", "text", "code"),
    *("chat", "embed", "detect", "pose", "edit", "inpaint", "restore", "colorize"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=500)
    parser.add_argument("--models", type=int, default=10_000)
    parser.add_argument("--predictions", type=int, default=1_000_000)
    parser.add_argument("--tag", default="bulk", help="name prefix of the seeded accounts")
    args = parser.parse_args()

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from marketplace.accounts.models import Account, User
    from marketplace.catalog.models import Hardware, Model

    if connection.vendor != "postgresql":
        sys.exit("seed_large.py needs PostgreSQL (DATABASE_URL=postgres://...)")
    call_command("migrate", verbosity=0)
    if Account.objects.filter(username=f"{args.tag}0").exists():
        print(f"already seeded with tag {args.tag!r}")
        extras(args.tag)
        return
    started = time.monotonic()
    hardware = Hardware.objects.order_by("price_per_second").first()
    assert hardware is not None, "no hardware (migrations seed it)"
    schema = json.loads((ROOT / "examples" / "hello" / ".cog" / "openapi_schema.json").read_text())
    now = datetime.now(UTC)
    rng = random.Random(7)

    users = User.objects.bulk_create(
        User(username=f"{args.tag}{i}", email=f"{args.tag}{i}@example.com", password="!")  # noqa: S106 (unusable)
        for i in range(args.accounts)
    )
    # bulk_create skips the post_save receiver that gives each user an account.
    accounts = Account.objects.bulk_create(
        Account(username=u.username, name=u.username, user=u) for u in users
    )
    raw = connection.connection  # the psycopg connection under Django's
    with raw.cursor() as cur:
        with cur.copy(
            "COPY catalog_model (owner_id, name, visibility, description, readme, cover_image,"
            " default_hardware_id, run_count, github_url, paper_url, license_url, featured,"
            " created_at, updated_at) FROM STDIN"
        ) as copy:
            for i in range(args.models):
                words = rng.sample(WORDS, 3)
                created = now - timedelta(minutes=rng.randrange(500_000))
                copy.write_row(
                    (
                        accounts[i % len(accounts)].pk,
                        f"{'-'.join(words)}-{i}",
                        "public" if rng.random() < 0.9 else "private",
                        f"A {' '.join(words)} model",
                        f"# {' '.join(words)}\n\nA model that does {words[0]} things.",
                        "",
                        hardware.pk,
                        rng.randrange(100_000),
                        "",
                        "",
                        "",
                        rng.random() < 0.01,
                        created,
                        created,
                    )
                )
        model_ids = list(
            Model.objects.filter(owner__in=accounts).order_by("pk").values_list("pk", "owner_id")
        )
        versions: list[tuple[str, int, int]] = []
        with cur.copy(
            "COPY catalog_version (id, model_id, openapi_schema, cog_version, cog_config, image,"
            " source_path, created_at, hidden, price_unit) FROM STDIN"
        ) as copy:
            schema_text = json.dumps(schema)
            for model_id, owner_id in model_ids:
                version_id = secrets.token_hex(32)
                versions.append((version_id, model_id, owner_id))
                copy.write_row(
                    (
                        version_id,
                        model_id,
                        schema_text,
                        "0.23.1",
                        "{}",
                        "",
                        str(ROOT / "examples" / "hello"),
                        now - timedelta(days=30),
                        False,
                        "prediction",
                    )
                )
        print(f"{len(accounts)} accounts, {len(versions)} models+versions in "
              f"{time.monotonic() - started:.1f} s")  # fmt: skip
        with cur.copy(
            "COPY predictions_prediction (id, model_id, version_id, account_id, hardware_id,"
            " source, status, input, output, logs, metrics, data_removed, cost, is_example,"
            " created_at, started_at, completed_at, webhook, webhook_events_filter,"
            " stream_token) FROM STDIN"
        ) as copy:
            for i in range(args.predictions):
                version_id, model_id, owner_id = versions[rng.randrange(len(versions))]
                created = now - timedelta(seconds=rng.randrange(90 * 86400))
                ok = rng.random() < 0.95
                copy.write_row(
                    (
                        secrets.token_hex(13),
                        model_id,
                        version_id,
                        owner_id,
                        hardware.pk,
                        "api",
                        "succeeded" if ok else "failed",
                        '{"text": "bench"}',
                        '"hello bench"' if ok else None,
                        "",
                        '{"predict_time": 0.01, "total_time": 0.02}',
                        False,
                        "0.000001",
                        False,
                        created,
                        created + timedelta(milliseconds=5),
                        created + timedelta(milliseconds=20),
                        "",
                        "[]",
                        secrets.token_urlsafe(24),
                    )
                )
                if i and i % 200_000 == 0:
                    print(f"  {i} predictions ({time.monotonic() - started:.0f} s)")
    raw.commit()
    extras(args.tag)
    print(
        f"seeded {args.models} models and {args.predictions} predictions in "
        f"{time.monotonic() - started:.1f} s"
    )


def extras(tag: str) -> None:
    """Collections (40 of 30 public models each) and featured examples (one succeeded prediction
    of 2,000 models), added once per tag, so that collection pages, example tabs and
    ``default_example`` have something to show; then the derived data."""
    from django.db import connection

    from marketplace.catalog.models import Collection, Model

    if not Collection.objects.filter(slug__startswith=f"{tag}-").exists():
        rng = random.Random(11)
        public = list(
            Model.objects.filter(owner__username__startswith=tag, visibility="public")
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        for i in range(40):
            word = WORDS[i % len(WORDS)]
            collection = Collection.objects.create(
                slug=f"{tag}-{word}-{i}", name=f"{word.title()} models {i}", description=word
            )
            collection.members.add(*rng.sample(public, 30))
        with connection.cursor() as cur:
            cur.execute(
                "UPDATE predictions_prediction SET is_example = true WHERE id IN ("
                " SELECT DISTINCT ON (model_id) id FROM predictions_prediction"
                " WHERE status = 'succeeded' AND model_id IN ("
                "  SELECT id FROM catalog_model ORDER BY id LIMIT 2000)"
                " ORDER BY model_id, created_at DESC)"
            )
        print("added 40 collections and 2000 featured examples")
    # Rows went in around the ORM and with past timestamps: derive what the site keeps as it
    # goes (search index, latest versions, /metrics rollups).
    from django.core.management import call_command

    call_command("reindex_catalog")
    call_command("rollup", "--rebuild")
    with connection.cursor() as cur:
        cur.execute("ANALYZE")


if __name__ == "__main__":
    main()
