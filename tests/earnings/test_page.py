"""The earnings page, the statement, GET /v1/earnings, the owner's prices and the admin."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from marketplace.audit.models import AuditEvent
from marketplace.catalog.models import Version
from marketplace.earnings.models import Earning
from tests.earnings.conftest import flat, marked_up, organization, payer, use
from tests.factories import UserFactory, token_for

pytestmark = pytest.mark.django_db
D = Decimal


def _api(user: Any) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(user)}")
    return client


def test_the_page_shows_totals_models_chart_and_prices(user: Any, client: Client) -> None:
    paid = flat(user, price="0.05")
    timed = marked_up(user, "timed", markup="0.001", example="hello-concurrent")
    bob = payer("bob")
    for _ in range(2):
        use(paid, bob)
    use(timed, bob, 4)  # $0.004 of markup → $0.0032 earned
    client.force_login(user)
    page = client.get("/billing/earnings/").content.decode()
    assert 'data-testid="stripe-not-configured"' in page
    assert 'data-testid="available">$0.0832<' in page
    assert 'data-testid="pending">$0.00<' in page
    assert "alice/paid" in page and "alice/timed" in page
    assert page.count("<rect ") == 2  # one day, two models
    assert "$0.0011 per second on CPU (includes $0.001 for the model&#x27;s creator)" in page
    assert "$0.05 per prediction" in page
    assert "20% fee" in page
    assert f"statement.csv?month={timezone.now():%Y-%m}" in page
    # The payer's own page shows nothing of alice's.
    client.force_login(bob)
    page = client.get("/billing/earnings/").content.decode()
    assert "alice/paid" not in page and 'data-testid="available">$0.00<' in page


def test_connect_button_shows_when_stripe_is_configured(
    user: Any, client: Client, settings: Any
) -> None:
    settings.STRIPE_SECRET_KEY = "sk_test_configured"
    client.force_login(user)
    page = client.get("/billing/earnings/").content.decode()
    assert "Connect with Stripe" in page and 'data-testid="connect-status"' in page


def test_organisation_earnings_are_for_its_owners_only(user: Any, client: Client) -> None:
    mia = UserFactory(username="mia")
    acme = organization("acme", alice="owner", mia="member")
    version = flat(acme, "tool")
    use(version, payer("bob"))
    client.force_login(user)
    assert "acme/tool" in client.get("/billing/earnings/?account=acme").content.decode()
    assert client.get("/billing/earnings/statement.csv?account=acme").status_code == 200
    client.force_login(mia)
    assert client.get("/billing/earnings/?account=acme").status_code == 404
    assert client.get("/billing/earnings/statement.csv?account=acme").status_code == 404
    assert client.post("/billing/earnings/connect?account=acme").status_code == 404
    anonymous = Client().get("/billing/earnings/")
    assert anonymous.status_code == 302 and "/account/login" in anonymous["Location"]


def test_statement_lists_every_earning_of_the_month(user: Any, client: Client) -> None:
    version = flat(user, price="0.05")
    bob = payer("bob")
    use(version, bob)
    use(version, bob)
    use(version, user)  # her own: not an earning
    client.force_login(user)
    month = f"{timezone.now():%Y-%m}"
    response = client.get(f"/billing/earnings/statement.csv?month={month}")
    assert response["Content-Type"] == "text/csv"
    assert f"earnings-alice-{month}.csv" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [r["kind"] for r in rows] == ["earning", "earning"]
    assert {r["reference"] for r in rows} == {f"earning-{e.pk}" for e in Earning.objects.all()}
    assert [(r["charged_usd"], r["fee_usd"], r["amount_usd"], r["status"]) for r in rows] == [
        ("0.050000", "0.010000", "0.040000", "available")
    ] * 2
    empty = client.get("/billing/earnings/statement.csv?month=2001-01")
    assert b"".join(empty.streaming_content).decode().count("\n") == 1  # the header only
    for bad in ("2026-13", "26-01", "now", "2026-1"):
        response = client.get(f"/billing/earnings/statement.csv?month={bad}")
        assert response.status_code == 400 and b"month:" in response.content


def test_api_earnings(user: Any) -> None:
    version = flat(user, price="0.05")
    use(version, payer("bob"))
    body = _api(user).get("/v1/earnings").json()
    assert body["account"] == "alice" and body["currency"] == "usd"
    assert body["platform_fee_percent"] == "20.00"
    assert body["connect"] == {"status": "not_connected"}
    assert body["totals"]["available"] == "0.040000"
    assert body["totals"]["pending"] == "0"
    assert body["by_model"] == [
        {
            "model": "alice/paid",
            "predictions": 1,
            "charged": "0.050000",
            "fees": "0.010000",
            "earned": "0.040000",
        }
    ]
    assert body["by_day"] == [
        {"date": timezone.now().date().isoformat(), "model": "alice/paid", "earned": "0.040000"}
    ]
    assert body["payouts"] == []
    assert body["minimum_payout"] == "0.10"
    assert _api(user).get("/v1/earnings?days=0").status_code == 400
    problem = _api(user).get("/v1/earnings?days=x")
    assert problem["Content-Type"] == "application/problem+json"
    assert "days" in problem.json()["detail"]
    assert _api(user).get("/v1/earnings?account=nobody").status_code == 404


def test_api_earnings_of_another_account_are_404_except_to_staff(user: Any) -> None:
    version = flat(user, price="0.05")
    use(version, payer("bob"))
    outsider = UserFactory(username="mallory")
    assert _api(outsider).get("/v1/earnings?account=alice").status_code == 404
    assert _api(outsider).get("/v1/earnings").json()["totals"]["earned"] == "0"
    staff = UserFactory(username="ops", is_staff=True)
    assert _api(staff).get("/v1/earnings?account=alice").json()["totals"]["earned"] == "0.040000"
    assert APIClient().get("/v1/earnings").status_code == 401


def test_owner_sets_a_markup_and_the_model_page_shows_it(user: Any, client: Client) -> None:
    version = flat(user, price="0.05")
    client.force_login(user)
    url = f"/alice/paid/versions/{version.pk}/price"
    # A markup with a flat price would never be charged: refused, naming the field.
    response = client.post(
        url, {"unit_price": "0.05", "price_unit": "prediction", "markup_per_second": "0.001"}
    )
    assert response.status_code == 422
    assert "Markup per second (USD): a flat price replaces hardware time" in (
        response.content.decode()
    )
    version.refresh_from_db()
    assert version.markup_per_second == 0 and version.unit_price == D("0.05")
    for bad in ("-1", "2", "abc"):
        response = client.post(url, {"price_unit": "prediction", "markup_per_second": bad})
        assert response.status_code == 422
    response = client.post(url, {"price_unit": "prediction", "markup_per_second": "0.0005"})
    assert response.status_code == 302
    version = Version.objects.get(pk=version.pk)
    assert version.unit_price is None and version.markup_per_second == D("0.0005")
    event = AuditEvent.objects.filter(action="version.price").latest("created_at")
    assert event.data["markup_per_second"] == "0.0005"
    page = client.get("/alice/paid").content.decode()
    assert "$0.0006 per second on CPU (includes $0.0005 for the model&#x27;s creator)" in page
    # Outsiders cannot set it.
    client.force_login(UserFactory(username="mallory"))
    assert client.post(url, {"markup_per_second": "1"}).status_code == 404


def test_admin_shows_the_fees_collected(user: Any, client: Client) -> None:
    version = flat(user, price="0.05")
    use(version, payer("bob"))  # collected (credit)
    use(version, payer("erin", credit=None, mode="postpaid"))  # not yet
    staff = UserFactory(username="ops", is_staff=True, is_superuser=True)
    client.force_login(staff)
    page = client.get("/admin/earnings/earning/").content.decode()
    assert 'data-testid="fees-total">$0.02<' in page
    assert 'data-testid="fees-collected">$0.01<' in page
    for path in ("payout", "earningreversal", "connectedaccount"):
        assert client.get(f"/admin/earnings/{path}/").status_code == 200
    client.force_login(user)
    assert client.get("/admin/earnings/earning/").status_code == 302  # not staff
