from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from marketplace.billing import services
from marketplace.earnings import payouts


class Command(BaseCommand):
    help = (
        "Pay owners their collected earnings through Stripe Transfers, and claw back what "
        "refunds and disputes reversed. Safe to run again: a run that failed part way resumes "
        "without a second transfer. Exits 1 if a payout could not be sent (it is retried)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        if not services.stripe_configured():
            raise CommandError("Stripe is not configured (STRIPE_SECRET_KEY is empty)")
        report = payouts.payouts_run()
        for payout in report.payouts:
            self.stdout.write(
                f"{payout.owner.username}: payout {payout.pk} ${payout.total} {payout.status} "
                f"{payout.stripe_transfer_id} {payout.last_error}".rstrip()
            )
        for reversal in report.clawbacks:
            self.stdout.write(
                f"payout {reversal.payout_id}: clawback of {reversal.amount_cents} cents "
                f"{reversal.stripe_reversal_id} {reversal.last_error}".rstrip()
            )
        self.stdout.write(
            f"{len(report.payouts)} payouts ({len(report.failed)} not sent), "
            f"{len(report.clawbacks)} clawbacks"
        )
        if report.failed:
            raise CommandError("some payouts were not sent; the next run retries them")
