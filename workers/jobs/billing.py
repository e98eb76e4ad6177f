"""Jobs on the ``billing`` queue. Their dotted paths are stored in queued jobs: keep them."""

from __future__ import annotations

from marketplace.billing.webhooks import event_process


def process_stripe_event(event_id: str) -> None:
    """Apply one recorded Stripe webhook event (a no-op if it was already applied)."""
    event_process(event_id)
