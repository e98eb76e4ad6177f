"""Onboarding owners to Stripe Connect (Express accounts through Account Links), their status
from ``account.updated`` webhooks, and what refunds and disputes of payers' payments take back.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from marketplace import audit
from marketplace.accounts.models import Account, User
from marketplace.billing import gateway
from marketplace.earnings import ledger
from marketplace.earnings.models import ConnectedAccount, EarningReversal

logger = logging.getLogger(__name__)


def connected_for(account: Account, *, actor: User, request: Any = None) -> ConnectedAccount:
    """The owner's connected account, created at Stripe on first use (the idempotency key
    ``acct-<account>`` makes concurrent first clicks one account)."""
    existing = ConnectedAccount.objects.filter(account=account).first()
    if existing is not None:
        return existing
    email = account.user.email if account.user_id and account.user else actor.email
    stripe_id = gateway.connect_account_create(account.pk, name=account.display_name, email=email)
    try:
        with transaction.atomic():
            connected = ConnectedAccount.objects.create(
                account=account, stripe_account_id=stripe_id
            )
            audit.record(
                "earnings.connect",
                actor=actor,
                account=account,
                target=connected,
                request=request,
                stripe_account=stripe_id,
            )
    except IntegrityError:
        return ConnectedAccount.objects.get(account=account)
    return connected


def onboarding_link(
    account: Account, *, actor: User, return_url: str, refresh_url: str, request: Any = None
) -> str:
    connected = connected_for(account, actor=actor, request=request)
    return gateway.connect_account_link(
        connected.stripe_account_id, refresh_url=refresh_url, return_url=return_url
    )


def dashboard_link(account: Account) -> str | None:
    connected = ConnectedAccount.objects.filter(account=account).first()
    if connected is None or not connected.details_submitted:
        return None
    return gateway.connect_login_link(connected.stripe_account_id)


def account_updated(obj: dict[str, Any]) -> None:
    """``account.updated``: re-read the account (events may arrive out of order) and keep its
    status."""
    connected = ConnectedAccount.objects.filter(stripe_account_id=obj.get("id", "")).first()
    if connected is None:
        logger.info("account.updated for %s, which is not one of ours", obj.get("id"))
        return
    state = gateway.connect_account(connected.stripe_account_id)
    ConnectedAccount.objects.filter(pk=connected.pk).update(
        details_submitted=state.details_submitted,
        charges_enabled=state.charges_enabled,
        payouts_enabled=state.payouts_enabled,
        transfers_active=state.transfers_active,
        requirements_due=state.requirements_due,
        disabled_reason=state.disabled_reason,
        synced_at=timezone.now(),
    )


def _enqueue_claw_back(owner_id: int) -> None:
    import django_rq

    django_rq.get_queue("billing").enqueue("workers.jobs.billing.claw_back_earnings", owner_id)


def _taken(charge: gateway.ChargeState, taken: int, reason: str, reference: str) -> None:
    invoice = gateway.invoice_of_payment(charge.payment_intent)
    if invoice is None:
        # A credit purchase: credit is spent on many things and earnings cannot be traced to it.
        logger.info("%s of %s: not an invoice payment; no earnings to reverse", reason, charge.id)
        return
    owners = ledger.reverse_for_invoice(
        invoice,
        taken_cents=taken,
        charge_cents=charge.amount,
        reason=reason,
        reference=reference,
    )
    for owner_id in sorted(owners):
        transaction.on_commit(partial(_enqueue_claw_back, owner_id))


def charge_refunded(obj: dict[str, Any]) -> None:
    charge = gateway.charge_retrieve(obj["id"])
    _taken(charge, charge.amount_refunded, EarningReversal.Reason.REFUND, charge.id)


def dispute_created(obj: dict[str, Any]) -> None:
    charge_id, disputed = gateway.dispute_amount(obj["id"])
    charge = gateway.charge_retrieve(charge_id)
    _taken(charge, charge.amount_refunded + disputed, EarningReversal.Reason.DISPUTE, obj["id"])
