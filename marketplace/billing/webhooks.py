"""Stripe webhook events: the inbox (verify, record once) and what each handled type does.

The view records the event and answers at once; the handler runs in an RQ job on the
``billing`` queue (it calls Stripe back, which is slow). Types without a handler are recorded
as processed and answered 2xx, so Stripe does not retry them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from marketplace.billing import gateway, invoicing, services
from marketplace.billing.models import BillingAccount, CreditGrant, StripeEvent
from marketplace.earnings import connect, payouts

logger = logging.getLogger(__name__)


def event_receive(payload: bytes, signature: str) -> tuple[StripeEvent | None, bool]:
    """Verify and record an event; returns (event, is_new). Raises on a bad signature."""
    data = gateway.construct_event(payload, signature)
    handled = data.get("type") in HANDLERS
    try:
        with transaction.atomic():
            event = StripeEvent.objects.create(
                id=data["id"],
                type=data.get("type", ""),
                payload=data,
                processed_at=None if handled else timezone.now(),
            )
            if handled:
                transaction.on_commit(lambda: _enqueue(event.pk))
    except IntegrityError:
        return StripeEvent.objects.filter(pk=data["id"]).first(), False
    return event, True


def _enqueue(event_id: str) -> None:
    import django_rq

    django_rq.get_queue("billing").enqueue(
        "workers.jobs.billing.process_stripe_event", event_id, job_id=f"stripe-{event_id}"
    )


def event_process(event_id: str) -> None:
    """Run the handler of a recorded event once (a retried job finds it processed)."""
    error: Exception | None = None
    with transaction.atomic():
        event = StripeEvent.objects.select_for_update().get(pk=event_id)
        if event.processed_at is not None:
            return
        handler = HANDLERS.get(event.type)
        try:
            if handler is not None:
                with transaction.atomic():
                    handler(event.payload["data"]["object"])
        except Exception as exc:
            error = exc
        event.attempts += 1
        if error is None:
            event.processed_at = timezone.now()
            event.last_error = ""
        else:
            event.last_error = f"{type(error).__name__}: {error}"
        event.save(update_fields=["attempts", "last_error", "processed_at"])
    if error is not None:
        raise error


def _billing_for_customer(customer: str) -> BillingAccount | None:
    return (
        BillingAccount.objects.select_related("account").filter(stripe_customer_id=customer).first()
    )


def checkout_completed(obj: dict[str, Any]) -> None:
    session = gateway.checkout_session(obj["id"])
    billing = _billing_for_customer(session.customer)
    if billing is None:
        logger.warning("checkout session %s: unknown customer %s", session.id, session.customer)
        return
    if session.mode == "payment" and session.metadata.get("purpose") == "credits":
        if session.payment_status != "paid":
            return  # delayed payment methods complete later (async_payment_succeeded)
        services.credits_grant(
            billing.account,
            Decimal(session.amount_total) / 100,
            source=CreditGrant.Source.CHECKOUT,
            reference=session.id,
            note="Bought through Stripe Checkout",
        )
    elif session.mode == "setup" and session.payment_method:
        gateway.set_default_payment_method(session.customer, session.payment_method)
        BillingAccount.objects.filter(pk=billing.pk).update(has_payment_method=True)


def invoice_paid(obj: dict[str, Any]) -> None:
    invoicing.invoice_paid(obj["id"])


def invoice_payment_failed(obj: dict[str, Any]) -> None:
    # Re-read: a late "failed" must not undo a payment that has since succeeded.
    state = gateway.invoice_retrieve(obj["id"])
    if state.status == "paid":
        invoicing.invoice_paid(state.id)
    else:
        invoicing.invoice_payment_failed(state.id, "The card was declined")


def transfer_changed(obj: dict[str, Any]) -> None:
    payouts.transfer_seen(obj["id"])


HANDLERS: dict[str, Callable[[dict[str, Any]], None]] = {
    "checkout.session.completed": checkout_completed,
    "checkout.session.async_payment_succeeded": checkout_completed,
    "invoice.paid": invoice_paid,
    "invoice.payment_succeeded": invoice_paid,
    "invoice.payment_failed": invoice_payment_failed,
    # Creator earnings (marketplace/earnings).
    "account.updated": connect.account_updated,
    "transfer.created": transfer_changed,
    "transfer.updated": transfer_changed,
    "transfer.reversed": transfer_changed,
    "charge.refunded": connect.charge_refunded,
    "charge.dispute.created": connect.dispute_created,
}
