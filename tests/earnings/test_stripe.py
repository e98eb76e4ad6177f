"""Earnings against the loopback Stripe server: onboarding through Account Links and signed
``account.updated`` webhooks into the real web server and billing worker; payouts as Stripe
Transfers (exact, once, resumable); refunds and disputes reversing earnings and clawing back
transfers."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from threading import Barrier
from typing import Any

import httpx
import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client

from marketplace.audit.models import AuditEvent
from marketplace.billing import services
from marketplace.billing.models import InvoiceRun, StripeEvent
from marketplace.earnings import payouts, reports
from marketplace.earnings.models import (
    ConnectedAccount,
    Earning,
    EarningReversal,
    Payout,
    TransferReversal,
)
from tests.billing.conftest import StripeServer
from tests.conftest import wait_for
from tests.earnings.conftest import card, connected, flat, marked_up, payer, use
from tests.factories import UserFactory

pytestmark = pytest.mark.slow
D = Decimal


def q6(value: Decimal) -> Decimal:
    return value.quantize(D("0.000001"), rounding=ROUND_HALF_UP)


def cents_floor(value: Decimal) -> int:
    return int((value * 100).to_integral_value(rounding=ROUND_FLOOR))


@pytest.fixture
def live(
    stripe_server: StripeServer, stripe_env: dict[str, str], start_web: Any, start_worker: Any
) -> Any:
    web = start_web(**stripe_env)
    start_worker("billing", **stripe_env)
    web.hook = f"{web.url}/billing/stripe/webhook/"
    stripe_server.control("webhook", url=web.hook, secret=stripe_env["STRIPE_WEBHOOK_SECRET"])
    stripe_server.control(
        "webhook",
        url=web.hook,
        secret=stripe_env["STRIPE_CONNECT_WEBHOOK_SECRET"],
        connect="true",
    )
    return web


def processed(type_: str, count: int = 1) -> bool:
    return StripeEvent.objects.filter(type=type_, processed_at__isnull=False).count() >= count


def _stripe(stripe_env: dict[str, str], method: str, path: str, **data: Any) -> Any:
    """Call the Stripe API as the operator would from the dashboard (refunds)."""
    response = httpx.request(
        method,
        f"{stripe_env['STRIPE_API_BASE']}{path}",
        data=data or None,
        headers={"Authorization": f"Bearer {stripe_env['STRIPE_SECRET_KEY']}"},
    )
    response.raise_for_status()
    return response.json()


def test_onboarding_enables_the_account_from_a_signed_webhook(
    user: Any, client: Client, live: Any, stripe_server: StripeServer, stripe_env: dict[str, str]
) -> None:
    client.force_login(user)
    page = client.get("/billing/earnings/").content.decode()
    assert "Connect with Stripe" in page
    response = client.post("/billing/earnings/connect")
    assert response.status_code == 302
    link = response["Location"]
    assert link.startswith(f"{stripe_server.url}/connect/onboarding/")
    account = ConnectedAccount.objects.get(account=user.account)
    stripe_account = stripe_server.objects("accounts")[account.stripe_account_id]
    assert stripe_account["type"] == "express"
    assert stripe_account["capabilities"] == {"transfers": "inactive"}
    assert stripe_account["metadata"] == {"account_id": str(user.account.pk)}
    assert stripe_account["email"] == "alice@example.com"
    assert not account.ready and account.synced_at is None
    assert AuditEvent.objects.filter(action="earnings.connect", account=user.account).exists()

    # "Save for later" comes back unfinished; the used link then sends the owner to our
    # refresh URL, which makes a fresh link for the same account.
    assert "Agree and submit" in httpx.get(link).text
    later = httpx.post(link, data={"action": "later"})
    assert later.status_code == 303
    assert later.headers["location"] == f"{live.url}/billing/earnings/?connect=return"
    again = httpx.get(link)
    assert again.headers["location"] == f"{live.url}/billing/earnings/connect/refresh"
    fresh = client.get("/billing/earnings/connect/refresh")
    assert fresh.status_code == 302 and fresh["Location"] != link
    assert ConnectedAccount.objects.count() == 1
    assert len(stripe_server.objects("accounts")) == 1

    done = httpx.post(fresh["Location"], data={"action": "submit"})
    assert done.status_code == 303
    wait_for(lambda: processed("account.updated"), timeout=30, message="account.updated")
    account.refresh_from_db()
    assert account.ready and account.payouts_enabled and account.charges_enabled
    assert account.details_submitted and account.requirements_due == []
    assert account.synced_at is not None
    deliveries = stripe_server.state()["deliveries"]
    event = StripeEvent.objects.get(type="account.updated")
    assert {"event": event.pk, "status": 200} in deliveries
    assert event.payload["account"] == account.stripe_account_id
    page = client.get("/billing/earnings/").content.decode()
    assert 'data-testid="connect-status" class="status status-enabled">Payouts enabled' in page

    # Stripe asks for more later: the status follows.
    stripe_server.control(f"accounts/{account.stripe_account_id}/require", "POST")
    wait_for(lambda: processed("account.updated", 2), timeout=30, message="account.updated")
    account.refresh_from_db()
    assert not account.ready and account.requirements_due == ["external_account"]
    page = client.get("/billing/earnings/").content.decode()
    assert "Stripe still needs: external_account (requirements.past_due)" in page

    dashboard = client.post("/billing/earnings/dashboard")
    assert dashboard["Location"].startswith(f"{stripe_server.url}/express/")

    # An account.updated not signed with either secret is refused and leaves no trace.
    forged = {**event.payload, "id": "evt_test_forged"}
    payload = json.dumps(forged)
    t = int(time.time())
    v1 = hmac.new(b"whsec_wrong", f"{t}.{payload}".encode(), hashlib.sha256).hexdigest()
    response = httpx.post(
        live.hook, content=payload, headers={"Stripe-Signature": f"t={t},v1={v1}"}
    )
    assert response.status_code == 400
    assert not StripeEvent.objects.filter(pk="evt_test_forged").exists()


def _expected(charges: list[tuple[Decimal, Decimal]]) -> Decimal:
    """What the owner earns from (charged, owner part) pairs at a 20% fee: restated."""
    return sum((part - q6(part * D("0.2")) for _, part in charges), D(0))


def test_hundred_predictions_by_two_payers_pay_out_exactly_once(
    user: Any, live: Any, stripe_server: StripeServer, settings: Any
) -> None:
    settings.PREDICTION_TIMEOUT = 60
    priced = flat(user, price="0.0333")
    timed = marked_up(user, "timed", markup="0.00123", example="hello-concurrent")
    bob = payer("bob", credit="50")  # pays from credit
    carol = payer("carol", credit=None, mode="postpaid")  # pays her monthly invoice
    card(carol, stripe_server)
    charges: dict[str, list[tuple[Decimal, Decimal]]] = {"bob": [], "carol": []}
    for i in range(100):
        who = bob if i % 2 == 0 else carol
        if i % 4 < 2:
            use(priced, who)
            charges[who.username].append((D("0.0333"), D("0.0333")))
        else:
            seconds = D(i) / 7 + D("0.1")
            use(timed, who, float(seconds))
            billed = seconds.quantize(D("0.001"), rounding=ROUND_HALF_UP)
            charges[who.username].append((q6(D("0.00133") * billed), q6(D("0.00123") * billed)))
    services.credits_grant(user.account, D(1), source="staff", reference="alice")
    for _ in range(3):
        use(priced, user)  # her own runs: no earnings

    assert Earning.objects.count() == 100
    bob_net, carol_net = _expected(charges["bob"]), _expected(charges["carol"])
    earnings = Earning.objects.filter(owner=user.account)
    assert sum(e.amount for e in earnings) == bob_net + carol_net
    assert sum(e.charged for e in earnings) == sum(c for c, _ in charges["bob"] + charges["carol"])
    assert reports.totals(user.account).available == bob_net
    assert reports.totals(user.account).pending == carol_net

    account = connected(user, stripe_server)
    call_command("run_payouts")
    first = Payout.objects.get()
    assert first.status == Payout.Status.PAID and first.amount == bob_net
    assert first.amount_cents == cents_floor(bob_net)

    # Carol's invoice is paid: her part becomes collected and goes in the next payout.
    call_command("invoice_period", "--until-now")
    assert InvoiceRun.objects.get(billing__account=carol.account).status == "paid"
    call_command("run_payouts")
    second = Payout.objects.exclude(pk=first.pk).get()
    assert second.amount == carol_net
    assert first.amount_cents + second.amount_cents == cents_floor(bob_net + carol_net)

    transfers = stripe_server.objects("transfers")
    assert sorted(t["amount"] for t in transfers.values()) == sorted(
        [first.amount_cents, second.amount_cents]
    )
    assert {t["destination"] for t in transfers.values()} == {account.stripe_account_id}
    assert {t["transfer_group"] for t in transfers.values()} == {
        f"payout-{first.pk}",
        f"payout-{second.pk}",
    }
    keys = [r["idempotency_key"] for r in stripe_server.control("requests")]
    assert f"tr-{first.pk}" in keys and f"tr-{second.pk}" in keys

    # Running again, and Stripe redelivering every transfer event, change nothing.
    call_command("run_payouts")
    wait_for(lambda: processed("transfer.created", 2), timeout=30, message="transfer events")
    for event in StripeEvent.objects.filter(type="transfer.created"):
        assert stripe_server.control(f"events/{event.pk}/deliver", "POST")["status"] == 200
    assert len(stripe_server.objects("transfers")) == 2
    assert Payout.objects.count() == 2
    assert not Earning.objects.filter(payout__isnull=True).exists()
    totals = reports.totals(user.account)
    assert totals.available == 0 and totals.pending == 0
    assert totals.paid == D(first.amount_cents + second.amount_cents) / 100


def test_a_failure_mid_run_resumes_without_a_second_transfer(
    user: Any, stripe_server: StripeServer, stripe_env: dict[str, str]
) -> None:
    owners = [user, UserFactory(username="bea"), UserFactory(username="cid")]
    bob = payer("bob")
    examples = ["hello", "hello-concurrent", "text-stream"]
    for owner, example in zip(owners, examples, strict=True):
        version = flat(owner, f"m-{owner.username}", price="1.50", example=example)
        use(version, bob)
        connected(owner, stripe_server)
    # The first transfer is made, but its answer is lost; the second gets a server error.
    stripe_server.control("faults", verb="POST", match="/v1/transfers", mode="disconnect")
    stripe_server.control("faults", verb="POST", match="/v1/transfers", mode="error", times="1")
    report = payouts.payouts_run()
    assert len(report.payouts) == 3 and len(report.failed) == 2
    # The first one was made (its answer lost), the second was not, the third went through.
    assert len(stripe_server.objects("transfers")) == 2
    lost, failed = [p for p in report.payouts if p.status == Payout.Status.PENDING]
    assert lost.last_error and failed.last_error and lost.attempts == failed.attempts == 1

    # Stripe forgets idempotency keys after a day: the rerun finds the transfer by its group.
    stripe_server.control("idempotency/clear", "POST")
    before = len(stripe_server.control("requests"))
    report = payouts.payouts_run()
    assert {p.pk for p in report.payouts} == {lost.pk, failed.pk}
    assert all(p.status == Payout.Status.PAID for p in Payout.objects.all())
    transfers = stripe_server.objects("transfers")
    assert len(transfers) == 3
    assert sorted(t["amount"] for t in transfers.values()) == [120, 120, 120]
    posted = [
        r["idempotency_key"]
        for r in stripe_server.control("requests")[before:]
        if r["method"] == "POST" and r["path"] == "/v1/transfers"
    ]
    assert len(posted) == 1  # only the transfer that had never been made
    assert Payout.objects.get(pk=lost.pk).stripe_transfer_id in transfers
    assert payouts.payouts_run().payouts == []
    assert len(stripe_server.objects("transfers")) == 3


def test_two_payout_runs_at_once_send_each_transfer_once(
    user: Any, stripe_server: StripeServer, stripe_env: dict[str, str], transactional_db: None
) -> None:
    owners = [user, UserFactory(username="bea")]
    bob = payer("bob")
    for owner, example in zip(owners, ["hello", "hello-concurrent"], strict=True):
        use(flat(owner, f"m-{owner.username}", price="2", example=example), bob)
        connected(owner, stripe_server)
    start = Barrier(4)

    def run(_: int) -> int:
        start.wait()
        try:
            return len(payouts.payouts_run().payouts)
        finally:
            connection.close()

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(run, range(4)))
    assert Payout.objects.count() == 2
    assert sorted(t["amount"] for t in stripe_server.objects("transfers").values()) == [160, 160]


def test_a_refund_reverses_earnings_and_claws_back_the_transfer(
    user: Any, live: Any, stripe_server: StripeServer, stripe_env: dict[str, str]
) -> None:
    version = flat(user, price="0.05")
    carol = payer("carol", credit=None, mode="postpaid")
    card(carol, stripe_server)
    for _ in range(10):
        use(version, carol)
    connected(user, stripe_server)
    call_command("invoice_period", "--until-now")
    run = InvoiceRun.objects.get()
    assert run.status == InvoiceRun.Status.PAID and run.total_cents == 50
    call_command("run_payouts")
    payout = Payout.objects.get()
    assert payout.amount_cents == 40  # 10 x ($0.05 - 20%)

    payments = _stripe(stripe_env, "GET", f"/v1/invoice_payments?invoice={run.stripe_invoice_id}")
    intent = payments["data"][0]["payment"]["payment_intent"]
    charge = _stripe(stripe_env, "GET", f"/v1/payment_intents/{intent}")["latest_charge"]

    # Half the invoice is refunded: half of every earning it paid is taken back, and the
    # owner's transfer is reversed by as much.
    _stripe(stripe_env, "POST", "/v1/refunds", charge=charge, amount=25)
    wait_for(lambda: processed("charge.refunded"), timeout=30, message="charge.refunded")
    reversals = EarningReversal.objects.all()
    assert reversals.count() == 10
    assert {(r.amount, r.reason, r.reference) for r in reversals} == {(D("0.02"), "refund", charge)}
    wait_for(
        lambda: TransferReversal.objects.filter(stripe_reversal_id__gt="").exists(),
        timeout=30,
        message="the clawback",
    )
    clawback = TransferReversal.objects.get()
    assert clawback.payout == payout and clawback.amount_cents == 20
    transfer = stripe_server.objects("transfers")[payout.stripe_transfer_id]
    assert transfer["amount_reversed"] == 20
    wait_for(
        lambda: Payout.objects.get(pk=payout.pk).stripe_amount_reversed == 20,
        timeout=30,
        message="transfer.reversed",
    )

    # The same refund event again takes nothing more.
    event = StripeEvent.objects.get(type="charge.refunded")
    again = {**event.payload, "id": "evt_test_again"}
    payload = json.dumps(again)
    t = int(time.time())
    secret = stripe_env["STRIPE_WEBHOOK_SECRET"].encode()
    v1 = hmac.new(secret, f"{t}.{payload}".encode(), hashlib.sha256).hexdigest()
    response = httpx.post(
        live.hook, content=payload, headers={"Stripe-Signature": f"t={t},v1={v1}"}
    )
    assert response.text == "ok"
    wait_for(lambda: processed("charge.refunded", 2), timeout=30, message="the second event")
    assert EarningReversal.objects.count() == 10

    # The rest is disputed: everything is taken back.
    stripe_server.control(f"charges/{charge}/dispute", "POST")
    wait_for(lambda: processed("charge.dispute.created"), timeout=30, message="the dispute")
    assert sum(r.amount for r in EarningReversal.objects.all()) == D("0.40")
    wait_for(
        lambda: (
            stripe_server.objects("transfers")[payout.stripe_transfer_id]["amount_reversed"] == 40
        ),
        timeout=30,
        message="the second clawback",
    )
    totals = reports.totals(user.account)
    assert totals.paid == 0 and totals.reversed == D("0.40") and totals.earned == 0
    # A payout run afterwards has nothing to send or take back.
    report = payouts.payouts_run()
    assert report.payouts == [] and report.clawbacks == []


def test_the_minimum_payout_holds_small_balances(
    user: Any, stripe_server: StripeServer, stripe_env: dict[str, str], settings: Any
) -> None:
    settings.EARNINGS_MIN_PAYOUT = D("1.00")
    version = flat(user, price="0.50")  # $0.40 earned a run
    bob = payer("bob")
    connected(user, stripe_server)
    use(version, bob)
    use(version, bob)
    assert payouts.payouts_run().payouts == []  # $0.80 waits
    assert reports.totals(user.account).available == D("0.80")
    use(version, bob)
    payout = payouts.payouts_run().payouts[0]
    assert payout.amount_cents == 120 and payout.status == Payout.Status.PAID
    assert [t["amount"] for t in stripe_server.objects("transfers").values()] == [120]


def test_a_refund_before_the_payout_is_netted_into_it(
    user: Any, stripe_server: StripeServer, stripe_env: dict[str, str]
) -> None:
    from marketplace.earnings import connect

    version = flat(user, price="0.05")
    carol = payer("carol", credit=None, mode="postpaid")
    card(carol, stripe_server)
    for _ in range(4):
        use(version, carol)
    call_command("invoice_period", "--until-now")
    run = InvoiceRun.objects.get()
    payments = _stripe(stripe_env, "GET", f"/v1/invoice_payments?invoice={run.stripe_invoice_id}")
    intent = payments["data"][0]["payment"]["payment_intent"]
    charge = _stripe(stripe_env, "GET", f"/v1/payment_intents/{intent}")["latest_charge"]
    _stripe(stripe_env, "POST", "/v1/refunds", charge=charge, amount=5)  # of 20 cents
    connect.charge_refunded({"id": charge})  # the webhook's handler, without the web server
    assert sum(r.amount for r in EarningReversal.objects.all()) == D("0.04")  # a quarter
    connected(user, stripe_server)
    payouts.payouts_run()
    payout = Payout.objects.get()
    assert payout.amount == D("0.12") and payout.amount_cents == 12
    assert EarningReversal.objects.filter(payout=payout).count() == 4
    assert not TransferReversal.objects.exists()
