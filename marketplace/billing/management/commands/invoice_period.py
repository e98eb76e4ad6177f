from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from marketplace.billing import invoicing, services


def _month(value: str) -> datetime:
    try:
        return datetime.strptime(value, "%Y-%m").replace(tzinfo=UTC)
    except ValueError as exc:
        raise CommandError(f"month: {value!r} is not YYYY-MM") from exc


class Command(BaseCommand):
    help = (
        "Invoice postpaid accounts through Stripe for one calendar month (default: the last "
        "complete month). Safe to run again: unfinished runs resume where they stopped."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--month", help="YYYY-MM (UTC)")
        parser.add_argument(
            "--until-now",
            action="store_true",
            help="Invoice the current month up to now (e.g. for a closing account)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not services.stripe_configured():
            raise CommandError("Stripe is not configured (STRIPE_SECRET_KEY is empty)")
        this_month = services.month_start()
        if options["until_now"]:
            start, end = this_month, datetime.now(UTC)
        elif options["month"]:
            start = _month(options["month"])
            end = datetime(start.year + start.month // 12, start.month % 12 + 1, 1, tzinfo=UTC)
        else:
            end = this_month
            start = datetime(end.year - (end.month == 1), (end.month - 2) % 12 + 1, 1, tzinfo=UTC)
        runs = invoicing.invoice_period(start, end)
        for run in runs:
            self.stdout.write(
                f"{run.billing.account.username}: {run.status} ${run.total} "
                f"{run.stripe_invoice_id} {run.last_error}".rstrip()
            )
        self.stdout.write(f"{len(runs)} invoice runs for {start:%Y-%m-%d} to {end:%Y-%m-%d}")
