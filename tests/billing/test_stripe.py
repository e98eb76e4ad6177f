"""Stripe flows end to end: stripe-python → the loopback Stripe server → signed webhooks into the
real web server → the real RQ worker on the ``billing`` queue."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import httpx
import pytest
from django.core.management import call_command
from django.utils import timezone

from marketplace.billing import gateway, invoicing, services
from marketplace.billing.models import (
    BillingAccount,
    CreditGrant,
    InvoiceRun,
    StripeEvent,
    UsageEntry,
)
from marketplace.predictions.services import PaymentRequired, prediction_create
from tests.billing.conftest import StripeServer, priced
from tests.billing.helpers import run
from tests.conftest import wait_for

pytestmark = pytest.mark.slow


def signed_post(url: str, event: dict[str, Any], secret: str) -> httpx.Response:
    """POST an event signed as Stripe documents it: HMAC-SHA256 of "<t>.<payload>"."""
    payload = json.dumps(event)
    t = int(time.time())
    v1 = hmac.new(secret.encode(), f"{t}.{payload}".encode(), hashlib.sha256).hexdigest()
    return httpx.post(
        url,
        content=payload,
        headers={"Stripe-Signature": f"t={t},v1={v1}", "Content-Type": "application/json"},
    )


@pytest.fixture
def live(
    stripe_server: StripeServer, stripe_env: dict[str, str], start_web: Any, start_worker: Any
) -> Any:
    web = start_web(**stripe_env)
    start_worker("billing", **stripe_env)
    web.hook = f"{web.url}/billing/stripe/webhook/"
    stripe_server.control("webhook", url=web.hook, secret=stripe_env["STRIPE_WEBHOOK_SECRET"])
    return web


def session_of(response: Any, stripe_server: StripeServer) -> str:
    assert response.status_code == 302
    location = response["Location"]
    assert location.startswith(f"{stripe_server.url}/c/pay/cs_test_")
    return location.rsplit("/", 1)[1]


def processed(event_id: str) -> bool:
    event = StripeEvent.objects.filter(pk=event_id).first()
    return event is not None and event.processed_at is not None


def test_card_setup_through_checkout_saves_the_default_card(
    user: Any, client: Any, live: Any, stripe_server: StripeServer
) -> None:
    client.force_login(user)
    session_id = session_of(client.post("/billing/card"), stripe_server)

    billing = BillingAccount.objects.get(account=user.account)
    customer = stripe_server.objects("customers")[billing.stripe_customer_id]
    assert customer["metadata"]["account_id"] == str(user.account.pk)
    assert customer["email"] == "alice@example.com"
    assert stripe_server.objects("checkout_sessions")[session_id]["mode"] == "setup"
    assert not billing.has_payment_method

    done = stripe_server.control(
        f"checkout/sessions/{session_id}/complete", payment_method="pm_card_visa"
    )
    assert done["deliveries"] == [{"event": done["event"]["id"], "status": 200}]
    wait_for(lambda: processed(done["event"]["id"]), timeout=30, message="the worker")
    billing.refresh_from_db()
    assert billing.has_payment_method
    customer = stripe_server.objects("customers")[billing.stripe_customer_id]
    assert customer["invoice_settings"]["default_payment_method"] == "pm_card_visa"

    # The second billing action reuses the customer.
    response = client.post("/billing/portal")
    assert response.status_code == 302 and response["Location"].startswith(stripe_server.url)
    assert len(stripe_server.objects("customers")) == 1


def test_credit_purchase_credits_exactly_once_and_rejects_bad_signatures(
    user: Any, client: Any, live: Any, stripe_server: StripeServer, stripe_env: dict[str, str]
) -> None:
    client.force_login(user)
    assert client.post("/billing/credits", {"amount": "7"}).status_code == 302  # not offered
    assert not stripe_server.objects("checkout_sessions")
    session_id = session_of(client.post("/billing/credits", {"amount": "25"}), stripe_server)
    session = stripe_server.objects("checkout_sessions")[session_id]
    assert session["mode"] == "payment" and session["amount_total"] == 2500

    done = stripe_server.control(
        f"checkout/sessions/{session_id}/complete", payment_method="pm_card_visa"
    )
    event = done["event"]
    wait_for(lambda: processed(event["id"]), timeout=30, message="the worker")
    billing = BillingAccount.objects.get(account=user.account)
    assert billing.credit_balance == Decimal(25)

    # Stripe redelivers the same event: answered 2xx, recorded once, credited once.
    assert stripe_server.control(f"events/{event['id']}/deliver", "POST")["status"] == 200
    response = signed_post(live.hook, event, stripe_env["STRIPE_WEBHOOK_SECRET"])
    assert response.status_code == 200 and response.text == "duplicate"
    # A different event about the same session (e.g. a resend from the dashboard).
    again = {**event, "id": "evt_test_" + secrets.token_hex(8)}
    assert signed_post(live.hook, again, stripe_env["STRIPE_WEBHOOK_SECRET"]).text == "ok"
    wait_for(lambda: processed(again["id"]), timeout=30, message="the worker")
    billing.refresh_from_db()
    assert billing.credit_balance == Decimal(25)
    assert CreditGrant.objects.get().reference == session_id

    # Bad signatures are refused and leave no trace.
    forged = {**event, "id": "evt_test_forged"}
    assert (
        stripe_server.control(f"events/{event['id']}/deliver", secret="whsec_wrong")["status"]
        == 400
    )
    assert signed_post(live.hook, forged, "whsec_wrong").status_code == 400
    assert httpx.post(live.hook, content=json.dumps(forged)).status_code == 400
    assert not StripeEvent.objects.filter(pk="evt_test_forged").exists()

    # Types we do not handle are acknowledged (so Stripe stops retrying) and recorded.
    ignored = {"id": "evt_test_ignored", "type": "customer.created", "data": {"object": {}}}
    assert signed_post(live.hook, ignored, stripe_env["STRIPE_WEBHOOK_SECRET"]).status_code == 200
    assert StripeEvent.objects.get(pk="evt_test_ignored").processed_at is not None


def _cents(amount: Decimal) -> int:
    return int((amount * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _card(user: Any, stripe_server: StripeServer, payment_method: str) -> BillingAccount:
    """Save a card the way the billing page does (Checkout in setup mode) and make it the
    default, as the checkout.session.completed handler does."""
    billing = services.billing_for(user.account)
    gateway.setup_session(billing, success_url="http://x/ok", cancel_url="http://x/no")
    sessions = stripe_server.objects("checkout_sessions")
    session_id = next(k for k, v in sessions.items() if v["status"] == "open")
    done = stripe_server.control(
        f"checkout/sessions/{session_id}/complete", payment_method=payment_method
    )
    if done["deliveries"]:  # a live web server got it: let the worker finish first
        wait_for(lambda: processed(done["event"]["id"]), timeout=30, message="the worker")
    gateway.set_default_payment_method(billing.stripe_customer_id, payment_method)
    BillingAccount.objects.filter(pk=billing.pk).update(has_payment_method=True)
    billing.refresh_from_db()
    return billing


def _create(version: Any, user: Any) -> Any:
    return prediction_create(
        version=version, input={"text": "a"}, account=user.account, created_by=user
    )


def test_invoice_run_has_exact_totals_and_resumes_after_a_failure(
    user: Any, stripe_server: StripeServer, settings: Any, stripe_env: dict[str, str]
) -> None:
    # Usage recorded before the operator configured Stripe (no card needed then).
    settings.STRIPE_SECRET_KEY = ""
    hello = priced(user, per_second="0.0115")
    flat = priced(
        user, "flat", per_second="0.0115", unit_price="0.0333", example="hello-concurrent"
    )
    services.credits_grant(user.account, Decimal("0.001"), source="staff", reference="tiny")
    durations = [1.5, 2.25, 10.004, 0.333]
    for seconds in durations:
        run(_create(hello, user), seconds)
    for _ in range(3):
        run(_create(flat, user), 1)
    settings.STRIPE_SECRET_KEY = stripe_env["STRIPE_SECRET_KEY"]

    entries = UsageEntry.objects.filter(version=hello)
    assert [e.amount for e in entries.order_by("created_at")] == [
        Decimal("0.017250"),  # 1.500 s x $0.0115
        Decimal("0.025875"),
        Decimal("0.115046"),  # 10.004 x 0.0115 = 0.115046
        Decimal("0.003830"),  # 0.333 x 0.0115 = 0.0038295 → half up
    ]
    hello_owed = sum((e.invoiceable for e in entries), Decimal(0))
    assert hello_owed == Decimal("0.161001")  # 0.162001 minus $0.001 of credit
    flat_owed = Decimal("0.0999")
    expected = _cents(hello_owed) + _cents(flat_owed)
    assert expected == 16 + 10

    # The first attempt stops: the customer has no card yet (Stripe answers 400).
    call_command("invoice_period", "--until-now")
    first = InvoiceRun.objects.get()
    assert first.status == InvoiceRun.Status.FINALIZED
    assert "payment method" in first.last_error
    assert first.total_cents == expected

    _card(user, stripe_server, "pm_card_visa")
    call_command("invoice_period", "--until-now")  # resumes the same run
    run_ = InvoiceRun.objects.get()
    assert run_.status == InvoiceRun.Status.PAID
    invoices = stripe_server.objects("invoices")
    assert list(invoices) == [run_.stripe_invoice_id]
    invoice = httpx.get(
        f"{stripe_server.url}/v1/invoices/{run_.stripe_invoice_id}",
        headers={"Authorization": f"Bearer {stripe_env['STRIPE_SECRET_KEY']}"},
    ).json()
    assert invoice["status"] == "paid" and invoice["total"] == expected
    assert sorted(line["amount"] for line in invoice["lines"]["data"]) == sorted(
        [_cents(hello_owed), _cents(flat_owed)]
    )
    keys = [
        r["idempotency_key"] for r in stripe_server.control("requests") if r["method"] == "POST"
    ]
    assert f"inv-{run_.pk}" in keys and f"inv-fin-{run_.pk}" in keys
    assert {f"ii-{line.pk}" for line in run_.lines.all()} <= set(keys)
    assert f"inv-pay-{run_.pk}-1" in keys and f"inv-pay-{run_.pk}-2" in keys
    assert len(stripe_server.objects("invoiceitems")) == 2  # not pushed twice
    assert UsageEntry.objects.filter(invoice_run__isnull=True).count() == 0


def test_failed_invoice_payment_blocks_paid_predictions_until_paid(
    user: Any, stripe_server: StripeServer, live: Any
) -> None:
    version = priced(user, per_second="0.01")
    billing = _card(user, stripe_server, "pm_card_chargeCustomerFail")  # declines when charged
    run(_create(version, user), 2)

    call_command("invoice_period", "--until-now")
    run_ = InvoiceRun.objects.get()
    assert run_.status == InvoiceRun.Status.PAYMENT_FAILED
    billing.refresh_from_db()
    assert billing.payment_failed_invoice == run_.stripe_invoice_id
    with pytest.raises(PaymentRequired, match="invoice"):
        _create(version, user)
    # Stripe's invoice.payment_failed webhook arrives; the handler re-reads and keeps the block.
    wait_for(
        lambda: StripeEvent.objects.filter(
            type="invoice.payment_failed", processed_at__isnull=False
        ).exists(),
        timeout=30,
        message="invoice.payment_failed to be processed",
    )
    billing.refresh_from_db()
    assert billing.payment_failed_invoice == run_.stripe_invoice_id

    # The customer saves a working card; the next run retries, and invoice.paid lifts the block.
    _card(user, stripe_server, "pm_card_visa")
    call_command("invoice_period", "--until-now")
    run_.refresh_from_db()
    assert run_.status == InvoiceRun.Status.PAID and run_.payment_attempts == 2
    wait_for(
        lambda: StripeEvent.objects.filter(
            type="invoice.paid", processed_at__isnull=False
        ).exists(),
        timeout=30,
        message="invoice.paid to be processed",
    )
    billing.refresh_from_db()
    assert billing.payment_failed_invoice == ""
    _create(version, user)


def test_an_invoice_whose_total_differs_from_the_ledger_is_not_charged(
    user: Any, stripe_server: StripeServer, settings: Any, stripe_env: dict[str, str]
) -> None:
    settings.STRIPE_SECRET_KEY = ""
    run(_create(priced(user, per_second="0.01"), user), 5)  # $0.05
    settings.STRIPE_SECRET_KEY = stripe_env["STRIPE_SECRET_KEY"]
    billing = _card(user, stripe_server, "pm_card_visa")
    run_ = invoicing.invoice_run_create(billing, services.month_start(), timezone.now())
    assert run_.total_cents == 5
    # An earlier attempt created the invoice, and someone added an item to it by hand.
    customer = billing.stripe_customer_id
    invoice = gateway.invoice_create(customer, run_id=run_.pk, description="usage")
    gateway.invoice_item_create(
        customer, invoice=invoice, amount_cents=999, description="by hand", line_id=0
    )
    InvoiceRun.objects.filter(pk=run_.pk).update(
        stripe_invoice_id=invoice, status=InvoiceRun.Status.INVOICE_CREATED
    )
    run_.refresh_from_db()

    run_ = invoicing.invoice_run_push(run_)
    assert run_.status == InvoiceRun.Status.MISMATCH
    assert run_.last_error == "Stripe total 1004 != ledger total 5 cents"
    paths = [r["path"] for r in stripe_server.control("requests")]
    assert f"/v1/invoices/{invoice}/finalize" in paths
    assert f"/v1/invoices/{invoice}/pay" not in paths
