"""Jobs on the ``webhooks`` queue. Their dotted paths are stored in queued jobs: keep them."""

from __future__ import annotations

from marketplace.predictions import webhooks


def deliver_webhook(delivery_id: int) -> None:
    webhooks.deliver(delivery_id)
