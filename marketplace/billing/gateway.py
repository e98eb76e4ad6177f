"""The only module that talks to Stripe (and the only one that imports ``stripe``).

It reads just the fields the app needs from Stripe's answers, and every write that must not
happen twice carries an idempotency key built from our own ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import stripe
from django.conf import settings

from marketplace.billing.models import BillingAccount


class StripeNotConfigured(Exception):
    pass


class PaymentDeclined(Exception):
    """Stripe refused to charge the card (the invoice stays open)."""


SignatureError = stripe.SignatureVerificationError
StripeError = stripe.StripeError


def client() -> stripe.StripeClient:
    if not settings.STRIPE_SECRET_KEY:
        raise StripeNotConfigured("Stripe is not configured (STRIPE_SECRET_KEY is empty)")
    base = settings.STRIPE_API_BASE
    return stripe.StripeClient(
        settings.STRIPE_SECRET_KEY,
        base_addresses={"api": base, "files": base, "connect": base, "meter_events": base},
        max_network_retries=settings.STRIPE_MAX_NETWORK_RETRIES,
    )


def _opts(key: str | None) -> Any:
    return {"idempotency_key": key} if key else {}


def construct_event(payload: bytes, signature: str) -> dict[str, Any]:
    """Verify a webhook's signature, made with the account endpoint's secret or the Connect
    endpoint's (events of connected accounts); raises ``SignatureError`` or ``ValueError``."""
    secrets = [settings.STRIPE_WEBHOOK_SECRET, settings.STRIPE_CONNECT_WEBHOOK_SECRET]
    error: Exception = SignatureError("No webhook signing secret is configured", signature)
    for secret in filter(None, secrets):
        try:
            return stripe.Webhook.construct_event(payload, signature, secret).to_dict()
        except SignatureError as exc:
            error = exc
    raise error


def ensure_customer(billing: BillingAccount) -> str:
    """The account's Stripe customer, created on its first billing action."""
    if billing.stripe_customer_id:
        return billing.stripe_customer_id
    account = billing.account
    email = account.user.email if account.user_id and account.user else ""
    params: Any = {
        "name": account.display_name,
        "metadata": {"account_id": str(account.pk), "account": account.username},
    }
    if email:
        params["email"] = email
    customer = client().v1.customers.create(params, _opts(f"cus-{account.pk}"))
    # A concurrent first action may have saved one already: keep the first.
    updated = BillingAccount.objects.filter(pk=billing.pk, stripe_customer_id="").update(
        stripe_customer_id=customer.id
    )
    if not updated:
        billing.refresh_from_db(fields=["stripe_customer_id"])
    else:
        billing.stripe_customer_id = customer.id
    return billing.stripe_customer_id


def setup_session(billing: BillingAccount, *, success_url: str, cancel_url: str) -> str:
    """A Checkout session in setup mode (save a card); returns its URL."""
    params: Any = {
        "mode": "setup",
        "customer": ensure_customer(billing),
        "currency": settings.BILLING_CURRENCY,
        "payment_method_types": ["card"],
        "success_url": success_url,
        "cancel_url": cancel_url,
        "metadata": {"account_id": str(billing.account_id), "purpose": "card"},
    }
    session = client().v1.checkout.sessions.create(params)
    return str(session.url)


def credit_session(
    billing: BillingAccount, *, amount_cents: int, success_url: str, cancel_url: str
) -> str:
    """A Checkout session in payment mode that buys ``amount_cents`` of credit."""
    session = client().v1.checkout.sessions.create(
        {
            "mode": "payment",
            "customer": ensure_customer(billing),
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": settings.BILLING_CURRENCY,
                        "unit_amount": amount_cents,
                        "product_data": {"name": "Prediction credit"},
                    },
                }
            ],
            "success_url": success_url,
            "cancel_url": cancel_url,
            "metadata": {"account_id": str(billing.account_id), "purpose": "credits"},
        }
    )
    return str(session.url)


def portal_session(billing: BillingAccount, *, return_url: str) -> str:
    session = client().v1.billing_portal.sessions.create(
        {"customer": ensure_customer(billing), "return_url": return_url}
    )
    return str(session.url)


@dataclass(frozen=True)
class CheckoutResult:
    id: str
    mode: str
    status: str
    payment_status: str
    customer: str
    amount_total: int
    currency: str
    metadata: dict[str, str]
    payment_method: str | None


def checkout_session(session_id: str) -> CheckoutResult:
    """Re-read a Checkout session (webhooks are hints; Stripe holds the truth)."""
    session = client().v1.checkout.sessions.retrieve(session_id, {"expand": ["setup_intent"]})
    setup_intent = getattr(session, "setup_intent", None)
    payment_method = getattr(setup_intent, "payment_method", None) if setup_intent else None
    return CheckoutResult(
        id=session.id,
        mode=str(session.mode),
        status=str(getattr(session, "status", "")),
        payment_status=str(getattr(session, "payment_status", "")),
        customer=str(session.customer or ""),
        amount_total=int(getattr(session, "amount_total", 0) or 0),
        currency=str(getattr(session, "currency", "") or ""),
        metadata=_plain(getattr(session, "metadata", None)),
        payment_method=str(payment_method) if payment_method else None,
    )


def _plain(obj: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in obj.to_dict().items()} if obj else {}


def set_default_payment_method(customer: str, payment_method: str) -> None:
    client().v1.customers.update(
        customer, {"invoice_settings": {"default_payment_method": payment_method}}
    )


def invoice_create(customer: str, *, run_id: int, description: str) -> str:
    invoice = client().v1.invoices.create(
        {
            "customer": customer,
            "auto_advance": False,
            "collection_method": "charge_automatically",
            "pending_invoice_items_behavior": "exclude",
            "description": description,
            "metadata": {"invoice_run": str(run_id)},
        },
        _opts(f"inv-{run_id}"),
    )
    return str(invoice.id)


def invoice_item_create(
    customer: str, *, invoice: str, amount_cents: int, description: str, line_id: int
) -> str:
    item = client().v1.invoice_items.create(
        {
            "customer": customer,
            "invoice": invoice,
            "amount": amount_cents,
            "currency": settings.BILLING_CURRENCY,
            "description": description,
            "metadata": {"invoice_line": str(line_id)},
        },
        _opts(f"ii-{line_id}"),
    )
    return str(item.id)


@dataclass(frozen=True)
class InvoiceState:
    id: str
    status: str
    total: int
    hosted_invoice_url: str


def _state(invoice: Any) -> InvoiceState:
    return InvoiceState(
        id=str(invoice.id),
        status=str(invoice.status),
        total=int(invoice.total),
        hosted_invoice_url=str(getattr(invoice, "hosted_invoice_url", "") or ""),
    )


def invoice_finalize(invoice: str, *, run_id: int) -> InvoiceState:
    current = client().v1.invoices.retrieve(invoice)
    if current.status != "draft":
        return _state(current)
    return _state(
        client().v1.invoices.finalize_invoice(
            invoice, {"auto_advance": True}, _opts(f"inv-fin-{run_id}")
        )
    )


def invoice_pay(invoice: str, *, run_id: int, attempt: int) -> InvoiceState:
    try:
        return _state(client().v1.invoices.pay(invoice, {}, _opts(f"inv-pay-{run_id}-{attempt}")))
    except stripe.CardError as exc:
        raise PaymentDeclined(str(exc.user_message or exc)) from exc


def invoice_retrieve(invoice: str) -> InvoiceState:
    return _state(client().v1.invoices.retrieve(invoice))


# --- Stripe Connect: owners' Express accounts, transfers, refunds ------------------------------


@dataclass(frozen=True)
class ConnectState:
    id: str
    details_submitted: bool
    charges_enabled: bool
    payouts_enabled: bool
    transfers_active: bool
    requirements_due: list[str]
    disabled_reason: str


def connect_account_create(account_id: int, *, name: str, email: str) -> str:
    """An Express account for owner ``account_id`` that can receive transfers."""
    params: Any = {
        "type": "express",
        "capabilities": {"transfers": {"requested": True}},
        "business_profile": {"name": name},
        "metadata": {"account_id": str(account_id)},
    }
    if email:
        params["email"] = email
    return str(client().v1.accounts.create(params, _opts(f"acct-{account_id}")).id)


def connect_account_link(stripe_account: str, *, refresh_url: str, return_url: str) -> str:
    """A one-time onboarding link (Account Links expire within minutes: make one per click)."""
    link = client().v1.account_links.create(
        {
            "account": stripe_account,
            "type": "account_onboarding",
            "refresh_url": refresh_url,
            "return_url": return_url,
        }
    )
    return str(link.url)


def connect_login_link(stripe_account: str) -> str:
    """A one-time link into the owner's Express dashboard."""
    return str(client().v1.accounts.login_links.create(stripe_account).url)


def connect_account(stripe_account: str) -> ConnectState:
    account = client().v1.accounts.retrieve(stripe_account)
    requirements = getattr(account, "requirements", None)
    due: list[str] = []
    for field in ("past_due", "currently_due"):
        for item in getattr(requirements, field, None) or []:
            if str(item) not in due:
                due.append(str(item))
    capabilities = getattr(account, "capabilities", None)
    return ConnectState(
        id=str(account.id),
        details_submitted=bool(getattr(account, "details_submitted", False)),
        charges_enabled=bool(getattr(account, "charges_enabled", False)),
        payouts_enabled=bool(getattr(account, "payouts_enabled", False)),
        transfers_active=getattr(capabilities, "transfers", None) == "active",
        requirements_due=due,
        disabled_reason=str(getattr(requirements, "disabled_reason", "") or ""),
    )


@dataclass(frozen=True)
class TransferState:
    id: str
    amount: int
    amount_reversed: int
    destination: str
    payout_id: int | None
    # (reversal id, our TransferReversal id from its metadata)
    reversals: list[tuple[str, int | None]]


def _int_or_none(value: Any) -> int | None:
    return int(value) if value is not None and str(value).isdigit() else None


def _transfer(transfer: Any) -> TransferState:
    reversals = getattr(getattr(transfer, "reversals", None), "data", None) or []
    return TransferState(
        id=str(transfer.id),
        amount=int(transfer.amount),
        amount_reversed=int(getattr(transfer, "amount_reversed", 0) or 0),
        destination=str(transfer.destination),
        payout_id=_int_or_none(_plain(getattr(transfer, "metadata", None)).get("payout")),
        reversals=[
            (
                str(r.id),
                _int_or_none(_plain(getattr(r, "metadata", None)).get("transfer_reversal")),
            )
            for r in reversals
        ],
    )


def transfer_create(*, destination: str, amount_cents: int, payout_id: int, currency: str) -> str:
    transfer = client().v1.transfers.create(
        {
            "amount": amount_cents,
            "currency": currency,
            "destination": destination,
            "transfer_group": f"payout-{payout_id}",
            "description": f"Earnings payout {payout_id}",
            "metadata": {"payout": str(payout_id)},
        },
        _opts(f"tr-{payout_id}"),
    )
    return str(transfer.id)


def transfer_find(payout_id: int) -> str | None:
    """The transfer an earlier attempt made for this payout, if any (idempotency keys expire
    after a day; the transfer group does not)."""
    found = client().v1.transfers.list({"transfer_group": f"payout-{payout_id}", "limit": 10})
    for transfer in found.data:
        if _transfer(transfer).payout_id == payout_id:
            return str(transfer.id)
    return None


def transfer_retrieve(transfer_id: str) -> TransferState:
    return _transfer(client().v1.transfers.retrieve(transfer_id))


def transfer_reverse(transfer_id: str, *, amount_cents: int, reversal_id: int) -> str:
    reversal = client().v1.transfers.reversals.create(
        transfer_id,
        {"amount": amount_cents, "metadata": {"transfer_reversal": str(reversal_id)}},
        _opts(f"trr-{reversal_id}"),
    )
    return str(reversal.id)


def transfer_reversal_find(transfer_id: str, reversal_id: int) -> str | None:
    for found_id, ours in transfer_retrieve(transfer_id).reversals:
        if ours == reversal_id:
            return found_id
    return None


@dataclass(frozen=True)
class ChargeState:
    id: str
    amount: int
    amount_refunded: int
    payment_intent: str


def charge_retrieve(charge_id: str) -> ChargeState:
    charge = client().v1.charges.retrieve(charge_id)
    return ChargeState(
        id=str(charge.id),
        amount=int(charge.amount),
        amount_refunded=int(getattr(charge, "amount_refunded", 0) or 0),
        payment_intent=str(getattr(charge, "payment_intent", "") or ""),
    )


def dispute_amount(dispute_id: str) -> tuple[str, int]:
    """(charge id, disputed cents) of a dispute."""
    dispute = client().v1.disputes.retrieve(dispute_id)
    return str(dispute.charge), int(dispute.amount)


def invoice_of_payment(payment_intent: str) -> str | None:
    """The invoice a payment paid (None for a credit purchase)."""
    if not payment_intent:
        return None
    found = client().v1.invoice_payments.list(
        {"payment": {"type": "payment_intent", "payment_intent": payment_intent}, "limit": 1}
    )
    return str(found.data[0].invoice) if found.data else None
