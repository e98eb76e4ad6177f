from __future__ import annotations

import csv
import io
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from marketplace.accounts.models import ApiToken
from marketplace.billing import services
from marketplace.billing.models import BillingAccount, TokenCap
from marketplace.predictions.services import prediction_create
from tests.billing.conftest import priced
from tests.billing.helpers import run
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _use(version: Any, who: Any, seconds: float) -> Any:
    prediction = prediction_create(
        version=version, input={"text": "x"}, account=who.account, created_by=who
    )
    return run(prediction, seconds)


def test_anonymous_is_sent_to_sign_in(client: Client) -> None:
    response = client.get("/billing/")
    assert response.status_code == 302 and response["Location"].startswith("/account/login")
    assert client.get("/billing/usage.csv").status_code == 302


def test_page_shows_balance_spend_chart_usage_and_says_stripe_is_off(
    user: Any, client: Client
) -> None:
    version = priced(user, per_second="0.01")
    services.credits_grant(user.account, Decimal(5), source="staff", reference="p", note="hi")
    first = _use(version, user, 2)
    _use(version, user, 3)
    client.force_login(user)
    page = client.get("/billing/").content.decode()
    assert 'data-testid="stripe-not-configured"' in page
    assert "Stripe is not configured" in page
    assert "$4.95" in page  # 5 - 0.02 - 0.03 paid from credit
    assert "$0.05" in page  # this month
    assert page.count("<rect ") == 1  # one day, one model+hardware series
    assert "alice/hello · CPU" in page
    assert first.id in page
    assert "Buy credits" not in page  # no Stripe buttons without Stripe


def test_stripe_buttons_show_when_configured(user: Any, client: Client, settings: Any) -> None:
    settings.STRIPE_SECRET_KEY = "sk_test_configured"
    client.force_login(user)
    page = client.get("/billing/").content.decode()
    assert "Buy credits" in page and "Add a card" in page and "Billing portal" in page
    assert "Stripe is not configured" not in page


def test_csv_export_has_every_entry(user: Any, client: Client) -> None:
    version = priced(user, per_second="0.001")
    ids = {_use(version, user, s).id for s in (1, 2.5)}
    client.force_login(user)
    response = client.get("/billing/usage.csv?days=7")
    assert response["Content-Type"] == "text/csv"
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert {r["prediction"] for r in rows} == ids
    assert sorted(r["amount_usd"] for r in rows) == ["0.001000", "0.002500"]
    assert {r["model"] for r in rows} == {"alice/hello"}


def test_caps_form_saves_and_names_bad_fields(user: Any, client: Client) -> None:
    token, _ = ApiToken.create_for(user, "ci")
    client.force_login(user)
    response = client.post(
        "/billing/caps", {"monthly_cap": "25", f"token_cap_{token.pk}": "2.5"}, follow=True
    )
    assert "Spend caps saved." in response.content.decode()
    assert BillingAccount.objects.get(account=user.account).monthly_cap == Decimal(25)
    assert TokenCap.objects.get(token=token).monthly_cap == Decimal("2.5")
    response = client.post("/billing/caps", {"monthly_cap": "lots"}, follow=True)
    assert "monthly_cap: enter an amount" in response.content.decode()
    assert BillingAccount.objects.get(account=user.account).monthly_cap == Decimal(25)
    client.post("/billing/caps", {"monthly_cap": "", f"token_cap_{token.pk}": ""})
    assert BillingAccount.objects.get(account=user.account).monthly_cap is None
    assert not TokenCap.objects.exists()


def test_caps_form_ignores_other_peoples_tokens(user: Any, outsider: Any, client: Client) -> None:
    theirs, _ = ApiToken.create_for(user, "alice's")
    client.force_login(outsider)
    client.post("/billing/caps", {"monthly_cap": "", f"token_cap_{theirs.pk}": "0"})
    assert not TokenCap.objects.exists()


def test_forms_need_csrf(user: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post("/billing/caps", {"monthly_cap": "1"}).status_code == 403
    assert client.post("/billing/credits", {"amount": "10"}).status_code == 403


def test_owner_sees_use_of_their_models_and_outsiders_see_only_their_own(
    user: Any, outsider: Any, client: Client
) -> None:
    version = priced(user, per_second="0.01")
    theirs = _use(version, outsider, 4)
    _use(version, user, 1)  # the owner's own use is not "by others"
    UserFactory(username="carol")
    client.force_login(user)
    page = client.get("/billing/").content.decode()
    assert "Your models, used by others" in page
    assert "$0.04" in page and theirs.id not in page
    client.force_login(outsider)
    page = client.get("/billing/").content.decode()
    assert theirs.id in page and "Your models, used by others" not in page


def test_stripe_actions_without_stripe_explain_instead_of_failing(
    user: Any, client: Client
) -> None:
    client.force_login(user)
    response = client.post("/billing/portal", follow=True)
    assert "Stripe is not configured on this site." in response.content.decode()


def test_webhook_without_a_secret_is_refused(client: Client) -> None:
    assert (
        client.post("/billing/stripe/webhook/", "{}", content_type="application/json").status_code
        == 400
    )


def test_amounts_read_as_dollars_and_stay_exact() -> None:
    from decimal import Decimal

    from marketplace.billing.templatetags.money import usd

    assert usd(Decimal("25.930000")) == "$25.93"
    assert usd(Decimal("0.000005")) == "$0.000005"
    assert usd(Decimal("4.5")) == "$4.50"
    assert usd(Decimal("10")) == "$10.00"
    assert usd(Decimal("-0.25")) == "-$0.25"
    assert usd(None) == ""
