"""The Content-Security-Policy in a real browser: every kind of page loads without a single CSP
violation (the site's own scripts run with their nonce), and inline script injected into any
page — a ``<script>``, an event handler attribute, a ``javascript:`` link — does not run."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client
from playwright.sync_api import expect

from marketplace.accounts.models import Account, Membership
from marketplace.catalog.models import Collection
from marketplace.deployments.models import Deployment
from marketplace.predictions.models import Prediction
from marketplace.predictions.services import Outcome, prediction_create, prediction_finish
from tests.browser.conftest import GUARDED, shot
from tests.factories import UserFactory, cpu, publish

pytestmark = pytest.mark.slow

ANONYMOUS_PAGES = [
    "/",
    "/account/login",
    "/account/signup",
    "/account/password-reset",
    "/account/password-reset/sent",
    "/account/password-reset/done",
    "/v1/docs",
]

PAGES = [
    "/",
    "/search?q=input",
    "/collections",
    "/collections/tools",
    "/alice",
    "/alice/input-types",
    "/alice/input-types/api",
    "/alice/input-types/versions",
    "/alice/input-types/examples",
    "/alice/input-types/edit",
    "/alice/input-types/push",
    "/p/{prediction}",
    "/new",
    "/account/predictions",
    "/account/tokens",
    "/account/organizations",
    "/account/organizations/acme/members",
    "/account/invitations",
    "/account/audit",
    "/billing/",
    "/deployments",
    "/deployments/new",
    "/deployments/alice/dep",
    "/deployments/alice/dep/edit",
    "/ops/hosts/",
    "/ops/audit/",
    "/admin/",
    "/admin/predictions/webhookdelivery/",
    "/admin/django-rq/",
    "/v1/docs",
]

WATCH = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__violations.push(e.violatedDirective + " " + (e.blockedURI || "inline"));
});
"""

RAN = "(window.__injected = window.__injected || []).push"
INJECTED = (
    f"<script>{RAN}('script')</script>"
    f"<img src='data:,' onerror=\"{RAN}('handler')\" alt=''>"
    f"<a id='injected-link' href=\"javascript:void({RAN}('link'))\">x</a>"
)


@pytest.fixture
def site(transactional_db: None) -> dict[str, Any]:
    cpu()
    alice = UserFactory(username="alice", is_staff=True, is_superuser=True)
    version = publish(alice, "input-types")
    acme = Account.objects.create(username="acme", type=Account.Type.ORGANIZATION)
    Membership.objects.create(account=acme, user=alice, role="owner")
    Collection.objects.create(slug="tools", name="Tools").members.add(version.model_id)
    prediction = prediction_create(
        version=version, input={"name": "csp"}, account=alice.account, created_by=alice
    )
    # A tqdm line in the logs: prediction.js draws it as a progress bar (only script does).
    logs = " 50%|#####     | 5/10 [00:01<00:01]\n"
    prediction_finish(
        prediction.pk, Outcome("succeeded", output='{"greeting": "hello csp"}', logs=logs)
    )
    Prediction.objects.filter(pk=prediction.pk).update(is_example=True)
    Deployment.objects.create(
        owner=alice.account,
        name="dep",
        model_id=version.model_id,
        version=version,
        hardware=cpu(),
        min_instances=0,
        max_instances=1,
    )
    session = Client()
    session.force_login(alice)
    return {"prediction": prediction.pk, "session": session.cookies["sessionid"].value}


def watched(browser: Any, base: str, session: str | None) -> tuple[Any, Any, list[str]]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    if session:
        context.add_cookies([{"name": "sessionid", "value": session, "url": base}])
    context.add_init_script(WATCH)
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    return context, page, console


def csp_messages(console: list[str]) -> list[str]:
    return [m for m in console if "Content Security Policy" in m or "Content-Security-Policy" in m]


def load(page: Any, url: str) -> Any:
    response = page.goto(url, wait_until="load")
    assert response is not None and response.status == 200, url
    # Scripts are deferred; Redoc renders after load. Give them a moment to run (and to fail).
    page.wait_for_timeout(300)
    return response


def test_every_page_kind_loads_without_csp_violations(
    browser: Any, start_web: Any, site: dict[str, Any]
) -> None:
    web = start_web(**GUARDED)
    for session, paths in ((None, ANONYMOUS_PAGES), (site["session"], PAGES)):
        context, page, console = watched(browser, web.url, session)
        for path in paths:
            url = web.url + path.format(prediction=site["prediction"])
            response = load(page, url)
            policy = response.headers.get("content-security-policy", "")
            assert "object-src 'none'" in policy, (path, policy)
            if not path.startswith("/admin/"):
                assert "'unsafe-inline'" not in policy.split("script-src", 1)[1].split(";")[0]
            nonces = page.evaluate(
                "Array.from(document.scripts).filter(s => s.src).map(s => s.nonce)"
            )
            if not path.startswith(("/admin/", "/v1/docs")):
                # Every script of ours carries this response's nonce.
                assert all(n and f"'nonce-{n}'" in policy for n in nonces), (path, nonces)
            violations = page.evaluate("window.__violations")
            assert violations == [] and csp_messages(console) == [], (path, violations, console)
        if session:
            # The site's own scripts run under the policy: the playground mirrors its sliders.
            load(page, f"{web.url}/alice/input-types")
            page.get_by_text("Show advanced inputs").click()
            page.get_by_role("slider", name="Count slider").fill("9")
            expect(page.get_by_role("spinbutton", name="Count")).to_have_value("9")
            # The API docs rendered (Redoc draws the operations with script).
            load(page, f"{web.url}/v1/docs")
            expect(page.get_by_text("predictions.create").first).to_be_attached(timeout=20_000)
            shot(page, "csp-docs")
            assert page.evaluate("window.__violations") == [] and csp_messages(console) == []
        context.close()


def test_injected_inline_script_does_not_run(
    browser: Any, start_web: Any, site: dict[str, Any]
) -> None:
    web = start_web(**GUARDED)
    context, page, console = watched(browser, web.url, site["session"])

    def inject(route: Any) -> None:
        # What sanitising might one day miss, put straight into the page the server sent (its
        # headers, and so its policy, unchanged).
        response = route.fetch()
        if "text/html" not in response.headers.get("content-type", ""):
            return route.fulfill(response=response)
        body = re.sub(r"(<body[^>]*>)", r"\1" + INJECTED, response.text(), count=1)
        return route.fulfill(response=response, body=body)

    page.route(re.compile(r"^" + re.escape(web.url) + r"/(?!static/|v1/|files/).*"), inject)
    for path in ("/", "/alice/input-types", "/p/{prediction}", "/deployments/alice/dep"):
        load(page, web.url + path.format(prediction=site["prediction"]))
        page.locator("#injected-link").click()
        page.wait_for_timeout(200)
        assert page.evaluate("window.__injected") is None, path
        blocked = page.evaluate("window.__violations")
        assert any(v.startswith("script-src") for v in blocked), (path, blocked)
        # ...while the page's own script still ran (it draws the progress bar from the logs).
        if path.startswith("/p/"):
            expect(page.locator("#progress")).to_be_visible()
            expect(page.locator("#progress-text")).to_have_text(re.compile(r"^5/10"))
    shot(page, "csp-injected")
    assert csp_messages(console), "the browser reported the refused scripts"
    context.close()
