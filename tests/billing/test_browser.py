"""The billing page in Debian's Chromium (through Playwright): the chart, and buying credits
through the loopback Stripe server's hosted Checkout page, the signed webhook, the real web
server and the real billing worker."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from marketplace.billing import services
from marketplace.billing.models import BillingAccount
from marketplace.predictions.services import prediction_create
from tests.billing.conftest import StripeServer, priced
from tests.billing.helpers import run

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(settings.BASE_DIR) / "var" / "test" / "artifacts"


@pytest.fixture
def open_page() -> Iterator[Callable[[], Any]]:
    """Launch Chromium on demand: after the test's database work, because while Playwright's
    event loop runs in this thread Django hands out a separate, never-closed connection."""
    if not os.path.exists(CHROMIUM):
        pytest.fail("Chromium is missing: apt-get install chromium (make test does)")
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    manager = sync_playwright()
    browsers: list[Any] = []

    def _open() -> Any:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
        playwright = manager.start()
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-background-networking"]
        )
        browsers.append(browser)
        context = browser.new_context(viewport={"width": 1200, "height": 900})
        context.set_default_timeout(20_000)
        return context.new_page()

    yield _open
    for browser in browsers:
        browser.close()
    if browsers:
        manager.__exit__(None, None, None)
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


def test_buying_credits_in_the_browser(
    user: Any,
    stripe_server: StripeServer,
    stripe_env: dict[str, str],
    start_web: Any,
    start_worker: Any,
    settings: Any,
    open_page: Callable[[], Any],
) -> None:
    settings.PREDICTION_TIMEOUT = 10  # worst case $0.10 a prediction
    version = priced(user, per_second="0.01")
    billing = services.billing_for(user.account)
    BillingAccount.objects.filter(pk=billing.pk).update(mode=BillingAccount.Mode.PREPAID)
    services.credits_grant(user.account, Decimal(1), source="staff", reference="start")
    for seconds in (3, 4):
        prediction = prediction_create(
            version=version, input={"text": "x"}, account=user.account, created_by=user
        )
        run(prediction, seconds)
    web = start_web(**stripe_env)
    start_worker("billing", **stripe_env)
    stripe_server.control(
        "webhook",
        url=f"{web.url}/billing/stripe/webhook/",
        secret=stripe_env["STRIPE_WEBHOOK_SECRET"],
    )
    client = Client()
    client.force_login(user)
    page = open_page()  # no ORM calls from here on
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": web.url}]
    )

    page.goto(f"{web.url}/billing/")
    assert page.get_by_test_id("balance").inner_text() == "$0.93"
    assert page.locator("svg.chart rect").count() == 1
    assert page.locator("table.usage tbody tr").count() == 2

    page.get_by_label("Buy credits").select_option("25")
    page.get_by_role("button", name="Buy").click()
    page.wait_for_url(re.compile(re.escape(stripe_server.url) + r"/c/pay/cs_test_\w+"))
    page.get_by_role("button", name="Pay $25.00").click()
    page.wait_for_url(f"{web.url}/billing/?checkout=credits")
    assert "as soon as Stripe confirms" in page.get_by_role("status").inner_text()

    def credited() -> bool:
        page.reload()
        return bool(page.get_by_test_id("balance").inner_text() == "$25.93")

    for _ in range(60):
        if credited():
            break
        page.wait_for_timeout(500)
    assert page.get_by_test_id("balance").inner_text() == "$25.93"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "billing-page.png"), full_page=True)
