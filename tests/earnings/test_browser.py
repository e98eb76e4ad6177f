"""Creator earnings in Debian's Chromium (through Playwright), with every part real: the owner
prices her model and connects a Stripe Express account through the loopback Stripe server's
hosted onboarding page (the signed account.updated webhook goes to the real web server and
billing worker); another user runs the model from its playground on a real agent and Cog
server; the owner sees the earning, and then the payout."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from playwright.sync_api import expect

from marketplace.earnings import payouts
from marketplace.earnings.models import Earning
from tests.billing.conftest import StripeServer
from tests.browser.conftest import GUARDED, browser, shot  # noqa: F401 - the browser fixture
from tests.earnings.conftest import payer
from tests.factories import publish

pytestmark = pytest.mark.slow
RUN_TIMEOUT = 90_000  # ms: the first run boots the model's Cog server


def _signed_in(chromium: Any, user: Any, url: str) -> Any:
    client = Client()
    client.force_login(user)
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": url}]
    )
    return context.new_page()


def test_owner_connects_another_user_runs_the_model_and_the_owner_sees_the_earning(
    browser: Any,  # noqa: F811
    user: Any,
    stripe_server: StripeServer,
    stripe_env: dict[str, str],
    start_web: Any,
    start_worker: Any,
    start_agent: Any,
) -> None:
    publish(user, "hello")
    bob = payer("bob", credit="10")
    # The page says what the payout run (in this process) does: a payout from $0.10.
    web = start_web(**stripe_env, EARNINGS_MIN_PAYOUT="0.10", **GUARDED)
    start_worker("billing", **stripe_env, **GUARDED)
    start_agent(idle_timeout=30, max_instances=1, PUBLIC_URL=web.url, **GUARDED)
    hook = f"{web.url}/billing/stripe/webhook/"
    stripe_server.control("webhook", url=hook, secret=stripe_env["STRIPE_WEBHOOK_SECRET"])
    stripe_server.control(
        "webhook", url=hook, secret=stripe_env["STRIPE_CONNECT_WEBHOOK_SECRET"], connect="true"
    )
    alice = _signed_in(browser, user, web.url)

    # Alice prices her model: $0.50 a prediction.
    alice.goto(f"{web.url}/alice/hello/versions")
    alice.get_by_label("Price (USD)").fill("0.50")
    alice.get_by_label("Per", exact=True).select_option("prediction")
    alice.get_by_role("button", name="Set price").click()
    expect(alice.get_by_role("cell", name=re.compile(r"\$0\.50 per prediction"))).to_be_visible()

    # She connects with Stripe: onboarding on Stripe's page, back to her earnings page, and
    # the status arrives by webhook.
    alice.goto(f"{web.url}/billing/earnings/")
    expect(alice.get_by_test_id("connect-status")).to_have_text("Not connected")
    alice.get_by_role("button", name="Connect with Stripe").click()
    alice.wait_for_url(re.compile(re.escape(stripe_server.url) + r"/connect/onboarding/\w+"))
    shot(alice, "earnings-stripe-onboarding")
    alice.get_by_role("button", name="Agree and submit").click()
    alice.wait_for_url(f"{web.url}/billing/earnings/?connect=return")
    expect(alice.get_by_role("status")).to_contain_text("Welcome back from Stripe")
    for _ in range(60):
        if alice.get_by_test_id("connect-status").inner_text() == "Payouts enabled":
            break
        alice.wait_for_timeout(500)
        alice.reload()
    expect(alice.get_by_test_id("connect-status")).to_have_text("Payouts enabled")

    # Bob runs her model from its playground; the model page shows him the price.
    bob_page = _signed_in(browser, bob, web.url)
    bob_page.goto(f"{web.url}/alice/hello")
    expect(bob_page.locator("#cost")).to_contain_text("$0.50 per prediction")
    bob_page.get_by_role("button", name="Run").click()
    expect(bob_page).to_have_url(re.compile(r"/p/[a-z0-9]+$"))
    expect(bob_page.locator("#status")).to_have_text("succeeded", timeout=RUN_TIMEOUT)
    shot(bob_page, "earnings-payer-prediction")

    # Alice sees what she earned: $0.50 less the 20% fee.
    alice.goto(f"{web.url}/billing/earnings/")
    expect(alice.get_by_test_id("available")).to_have_text("$0.40")
    row = alice.locator("table.by-model tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("alice/hello")
    expect(row.locator("td").last).to_have_text("$0.40")
    expect(alice.locator("svg.chart rect")).to_have_count(1)
    earning = Earning.objects.get()
    assert earning.amount == Decimal("0.40") and earning.usage.billing.account == bob.account

    # The payout run sends it to her Stripe account.
    report = payouts.payouts_run()
    assert [p.amount_cents for p in report.payouts] == [40]
    alice.reload()
    expect(alice.get_by_test_id("paid")).to_have_text("$0.40")
    expect(alice.get_by_test_id("available")).to_have_text("$0.00")
    expect(alice.locator("table.payouts tbody tr")).to_contain_text(
        report.payouts[0].stripe_transfer_id
    )
    shot(alice, "earnings-page")
