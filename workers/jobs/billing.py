"""Jobs on the ``billing`` queue. Their dotted paths are stored in queued jobs: keep them."""

from __future__ import annotations

from marketplace.billing.webhooks import event_process
from marketplace.earnings import payouts


def process_stripe_event(event_id: str) -> None:
    """Apply one recorded Stripe webhook event (a no-op if it was already applied)."""
    event_process(event_id)


def run_payouts() -> dict[str, int]:
    """The periodic payout run (also ``manage.py run_payouts``); safe to run again at any time."""
    report = payouts.payouts_run()
    return {
        "payouts": len(report.payouts),
        "failed": len(report.failed),
        "clawbacks": len(report.clawbacks),
    }


def claw_back_earnings(account_id: int) -> int:
    """Take back from an owner's transfers what refunds and disputes reversed."""
    return len(payouts.claw_back(account_id))
