"""Deployment pages and queue transparency in a real browser (Debian's Chromium via Playwright)
against the real web server, an agent and Cog servers."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import GUARDED, browser, shot  # noqa: F401  (a fixture)
from tests.browser.conftest import page as page  # the fixture, under its own name
from tests.factories import FIXTURES, UserFactory, publish, token_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_create_a_deployment_watch_it_warm_up_and_a_queued_prediction_wait(
    page: Any,
    start_web: Any,
    start_agent: Any,
) -> None:
    alice = UserFactory(username="alice")
    alice.set_password("a-Long-pass-123")
    alice.save()
    version = publish(alice, FIXTURES / "cog" / "sleepy", name="sleepy")
    web = start_web(**GUARDED)
    start_agent(max_instances=3, PUBLIC_URL=web.url, **GUARDED)
    base = web.url

    page.goto(f"{base}/account/login?next=/deployments")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("a-Long-pass-123")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Deployments")).to_be_visible()
    page.get_by_role("link", name="New deployment").click()
    form = page.locator("main form")
    form.get_by_label("Name").fill("sleepy-web")
    form.get_by_label("Model").fill("alice/sleepy")
    form.get_by_label("Version").fill(version.pk)
    form.get_by_label("Min instances").fill("1")
    form.get_by_label("Max instances").fill("1")
    shot(page, "deployment-new")
    page.get_by_role("button", name="Create").click()
    expect(page).to_have_url(f"{base}/deployments/alice/sleepy-web")
    # min_instances=1: one instance warms up without traffic; the page follows it live.
    expect(page.locator("#live-count")).to_have_text("1", timeout=60_000)
    shot(page, "deployment-live")

    # Through the live server: Playwright's event loop owns this thread.
    headers = {"Authorization": f"Bearer {token_for(alice)}"}
    ids = [
        httpx.post(
            f"{base}/v1/deployments/alice/sleepy-web/predictions",
            json={"input": {"seconds": 1.5}},
            headers=headers,
            timeout=10,
        ).json()["id"]
        for _ in range(4)
    ]
    page.goto(f"{base}/p/{ids[-1]}")
    expect(page.locator("#queue")).to_contain_text(re.compile(r"position [1-3] in the queue"))
    expect(page.locator("#queue")).to_contain_text("waiting for a free slot")
    expect(page.locator("#queue-eta")).to_contain_text(re.compile(r"starts in about \d+ s"))
    shot(page, "prediction-queued")
    expect(page.locator("#status")).to_have_text("succeeded", timeout=60_000)
    expect(page.locator("#queue")).to_have_text("")

    page.goto(f"{base}/deployments/alice/sleepy-web")
    expect(page.get_by_role("cell", name=ids[-1])).to_be_visible()
    expect(page.locator("#queued-count")).to_have_text("0")
