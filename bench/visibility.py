#!/usr/bin/env python
"""What organisation roles cost the hottest access checks.

Builds (in the database of DATABASE_URL, migrated first; SQLite under var/bench/ by default) a
person who belongs to M organisations, each owning K private models, plus P public models of
others, then times with N repetitions:

  lookup/before   the same lookup as visible_to was before organisations (public, or the
                  person's own: a join, no subquery), for reference
  lookup/session  Model.objects.visible_to(user) .filter(owner/name).first()  (site: memberships
                  subquery)
  lookup/token    the same for the user of an org-scoped API token (one account, no subquery)
  list/session    the first 100 of visible_to(user) ordered by -created_at
  role            Account.is_member(user), nothing remembered (one indexed query)

and prints p50/p99 in milliseconds and the number of queries per call. Usage:

    DATABASE_URL=postgres://... .venv/bin/python bench/visibility.py [-n 500] [-m 50] [-k 20]

It creates its rows under names starting with "vbench"; run it against a scratch database.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketplace.settings")
os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("VAR_DIR", str(ROOT / "var" / "bench"))


def timed(fn: Callable[[], object], n: int) -> tuple[float, float, int]:
    from django.db import connection, reset_queries

    fn()  # warm
    samples = []
    reset_queries()
    for _ in range(n):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    queries = len(connection.queries) // n
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1], queries


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=500, help="repetitions")
    parser.add_argument("-m", type=int, default=50, help="organisations the person belongs to")
    parser.add_argument("-k", type=int, default=20, help="private models per organisation")
    parser.add_argument("-p", type=int, default=5000, help="public models of others")
    args = parser.parse_args()

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    from marketplace.accounts.models import Account, ApiToken, Membership, User
    from marketplace.catalog.models import Hardware, Model

    connection.force_debug_cursor = True
    hardware, _ = Hardware.objects.get_or_create(
        sku="cpu", defaults={"name": "CPU", "price_per_second": "0.0001"}
    )
    person, created = User.objects.get_or_create(username="vbench")
    if created:
        other = User.objects.create(username="vbench-other")
        Model.objects.bulk_create(
            Model(owner=other.account, name=f"m{i}", default_hardware=hardware)
            for i in range(args.p)
        )
        for j in range(args.m):
            org = Account.objects.create(username=f"vbench-org{j}", type="organization")
            Membership.objects.create(account=org, user=person, role="member")
            Model.objects.bulk_create(
                Model(
                    owner=org,
                    name=f"m{i}",
                    default_hardware=hardware,
                    visibility=Model.Visibility.PRIVATE,
                )
                for i in range(args.k)
            )
    org = Account.objects.get(username=f"vbench-org{args.m - 1}")
    _, raw = ApiToken.create_for(person, "bench", account=org)
    token = ApiToken.objects.authenticate(raw)
    assert token is not None
    site_user = User.objects.get(pk=person.pk)
    token_user = token.user
    name = f"m{args.k - 1}"
    other_name = "vbench-other"

    def lookup(user: User) -> Callable[[], object]:
        return lambda: (
            Model.objects.visible_to(user).filter(owner__username=org.username, name=name).first()
        )

    def before() -> object:
        # What the lookup was before organisations: personal private models only.
        from django.db.models import Q

        return (
            Model.objects.filter(Q(visibility=Model.Visibility.PUBLIC) | Q(owner__user=person))
            .filter(owner__username=other_name, name="m1")
            .first()
        )

    def listing() -> object:
        return list(Model.objects.visible_to(site_user).order_by("-created_at")[:100])

    def role() -> object:
        org.forget_roles()
        return org.is_member(site_user)

    print(
        f"{args.m} organisations x {args.k} private models, {args.p} public models, "
        f"n={args.n}, {connection.vendor}"
    )
    for label, fn in (
        ("lookup/before", before),
        ("lookup/session", lookup(site_user)),
        ("lookup/token", lookup(token_user)),
        ("list/session", listing),
        ("role", role),
    ):
        assert fn() is not None
        p50, p99, queries = timed(fn, args.n)
        print(f"{label:16} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  {queries} queries")


if __name__ == "__main__":
    main()
