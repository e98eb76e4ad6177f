"""An organisation in a real browser: create it, invite a member by username, who accepts from
the inbox and runs the organisation's private model as the organisation (billed to it)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from marketplace.accounts.models import Account, Membership
from marketplace.audit.models import AuditEvent
from marketplace.catalog.services import version_publish_local
from marketplace.predictions.models import Prediction
from tests.browser.conftest import GUARDED, browser, page, shot  # noqa: F401 - fixtures
from tests.factories import EXAMPLES, UserFactory, cpu

pytestmark = pytest.mark.slow

PASSWORD = "a-Long-pass-123"


def _log_in(page: Any, base: str, username: str) -> None:  # noqa: F811 - page is a fixture
    page.goto(f"{base}/account/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


def test_create_invite_accept_and_run_as_the_organization(
    browser: Any,  # noqa: F811 - fixture
    start_web: Any,
    start_agent: Any,
    transactional_db: None,
) -> None:
    cpu()
    for name in ("olive", "mia"):
        person = UserFactory(username=name)
        person.set_password(PASSWORD)
        person.save()
    web = start_web(**GUARDED)
    start_agent(PUBLIC_URL=web.url, **GUARDED)
    base = web.url

    olive = browser.new_context().new_page()
    _log_in(olive, base, "olive")
    olive.get_by_role("link", name="Organizations").click()
    olive.get_by_label("Name (its namespace)").fill("acme")
    olive.get_by_label("Display name (optional)").fill("Acme Inc")
    olive.get_by_role("button", name="Create organization").click()
    expect(olive).to_have_url(f"{base}/account/organizations/acme/members")
    org = Account.objects.get(username="acme")
    version, _ = version_publish_local(
        path=EXAMPLES / "hello", owner=org, name="hello", visibility="private"
    )
    olive.get_by_label("Username or email").fill("mia")
    olive.get_by_label("Role", exact=True).select_option("member")
    olive.get_by_role("button", name="Invite").click()
    expect(olive.get_by_role("cell", name="mia", exact=True)).to_be_visible()
    shot(olive, "org-members")

    mia = browser.new_context().new_page()
    _log_in(mia, base, "mia")
    assert mia.goto(f"{base}/acme/hello").status == 404  # private, and not hers yet
    mia.goto(f"{base}/account/invitations")
    shot(mia, "org-invitations")
    mia.get_by_role("button", name="Accept the invitation to acme").click()
    expect(mia).to_have_url(f"{base}/account/organizations/acme/members")
    assert Membership.objects.get(account=org, user__username="mia").role == "member"

    mia.goto(f"{base}/acme/hello")
    mia.get_by_label("Text").fill("team")
    mia.get_by_label("Run as (who pays)").select_option("acme")
    mia.get_by_role("button", name="Run").click()
    expect(mia).to_have_url(re.compile(r"/p/[a-z0-9]+$"))
    expect(mia.locator("#status")).to_have_text("succeeded", timeout=90_000)
    shot(mia, "org-prediction")
    prediction = Prediction.objects.get(pk=mia.url.rsplit("/", 1)[-1])
    assert prediction.account == org and prediction.created_by.username == "mia"
    assert prediction.version == version
    assert {"organization.create", "invitation.create", "invitation.accept"} <= set(
        AuditEvent.objects.filter(account=org).values_list("action", flat=True)
    )
