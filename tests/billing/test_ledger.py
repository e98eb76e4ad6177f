from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from marketplace.accounts.models import ApiToken
from marketplace.billing import pricing, services
from marketplace.billing.models import (
    BillingAccount,
    CreditGrant,
    Reservation,
    TokenCap,
    UsageEntry,
)
from marketplace.catalog.models import Version
from marketplace.predictions.models import Prediction
from marketplace.predictions.services import (
    InputValidationError,
    Outcome,
    PaymentRequired,
    prediction_cancel,
    prediction_create,
    prediction_finish,
)
from tests.billing.conftest import priced
from tests.billing.helpers import run
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
D = Decimal


def create(version: Version, user: Any, token: ApiToken | None = None) -> Prediction:
    return prediction_create(
        version=version,
        input={"text": "x"},
        account=user.account,
        created_by=user,
        created_by_token=token,
    )


def prepaid(user: Any, credit: str | None = None) -> BillingAccount:
    billing = services.billing_for(user.account)
    billing.mode = BillingAccount.Mode.PREPAID
    billing.save(update_fields=["mode"])
    if credit:
        services.credits_grant(user.account, D(credit), source="staff", reference=credit)
    billing.refresh_from_db()
    return billing


def test_per_second_prediction_writes_one_exact_entry_and_cost(user: Any, settings: Any) -> None:
    settings.PREDICTION_TIMEOUT = 100
    version = priced(user, per_second="0.000725")
    prediction = create(version, user)
    hold = Reservation.objects.get(prediction=prediction)
    assert hold.amount == D("0.072500")  # 100 s x $0.000725

    prediction = run(prediction, 1.2345)

    entry = UsageEntry.objects.get(prediction=prediction)
    assert entry.seconds == D("1.235")  # milliseconds, half up
    assert entry.amount == D("0.000895")  # 1.235 x 0.000725 = 0.000895375 → 6 places half up
    assert prediction.cost == entry.amount
    assert entry.model_id == version.model_id and entry.hardware.sku == "cpu"
    assert not Reservation.objects.filter(prediction=prediction).exists()


def test_failed_and_canceled_after_start_pay_for_time_used(user: Any) -> None:
    version = priced(user, per_second="0.01")
    failed = run(create(version, user), 2, Prediction.Status.FAILED)
    canceled = run(create(version, user), 3, Prediction.Status.CANCELED)
    assert failed.cost == D("0.02") and canceled.cost == D("0.03")
    assert UsageEntry.objects.count() == 2


def test_never_started_prediction_costs_nothing_and_has_no_entry(user: Any) -> None:
    version = priced(user)
    prediction = prediction_cancel(create(version, user))
    assert prediction.status == Prediction.Status.CANCELED
    assert prediction.cost == 0
    assert not UsageEntry.objects.exists()
    assert not Reservation.objects.exists()


def test_input_error_reserves_and_bills_nothing(user: Any) -> None:
    version = priced(user)
    prepaid(user, "1")
    with pytest.raises(InputValidationError):
        prediction_create(version=version, input={"nope": 1}, account=user.account, created_by=user)
    assert not Prediction.objects.exists() and not Reservation.objects.exists()


def test_finishing_twice_bills_once(user: Any) -> None:
    version = priced(user, per_second="0.01")
    prediction = run(create(version, user), 1)
    assert not prediction_finish(prediction.id, Outcome(Prediction.Status.FAILED))
    assert UsageEntry.objects.filter(prediction=prediction).count() == 1
    with pytest.raises(IntegrityError), transaction.atomic():
        services.settle(prediction)


def test_flat_price_per_prediction_replaces_hardware_time(user: Any) -> None:
    version = priced(user, per_second="0.01", unit_price="0.05")
    assert run(create(version, user), 30).cost == D("0.05")
    assert run(create(version, user), 30, Prediction.Status.FAILED).cost == 0
    assert UsageEntry.objects.count() == 2  # the failed one is on the ledger, at zero


def test_price_per_output_item_counts_items_up_to_the_reserved_number(
    user: Any, settings: Any
) -> None:
    settings.BILLING_MAX_OUTPUT_ITEMS = 4
    version = priced(user, unit_price="0.01", price_unit=Version.PriceUnit.OUTPUT_ITEM)
    first = create(version, user)
    assert Reservation.objects.get(prediction=first).amount == D("0.04")
    assert run(first, 1, output=["a", "b", "c"]).cost == D("0.03")
    assert run(create(version, user), 1, output=list("abcdefg")).cost == D("0.04")


def test_prepaid_account_without_credit_gets_payment_required_and_nothing_stored(
    user: Any, api: Any
) -> None:
    version = priced(user)
    prepaid(user)
    response = api.post(
        "/v1/predictions", {"version": version.id, "input": {"text": "x"}}, format="json"
    )
    assert response.status_code == 402
    assert response["Content-Type"] == "application/problem+json"
    assert "credit" in response.json()["detail"]
    assert not Prediction.objects.exists() and not Reservation.objects.exists()


def test_prepaid_credit_is_spent_and_never_negative(user: Any, settings: Any) -> None:
    settings.PREDICTION_TIMEOUT = 10
    version = priced(user, per_second="0.01")  # worst case $0.10
    billing = prepaid(user, "0.25")
    first, second = create(version, user), create(version, user)
    with pytest.raises(PaymentRequired):
        create(version, user)  # 0.25 - 0.20 held < 0.10
    run(first, 4)
    run(second, 10)
    billing.refresh_from_db()
    assert billing.credit_balance == D("0.11")  # 0.25 - 0.04 - 0.10
    entry = UsageEntry.objects.get(prediction=first)
    assert entry.credit_applied == entry.amount
    create(version, user)  # 0.11 covers another worst case


def test_account_monthly_cap_counts_spend_and_running_predictions(user: Any, settings: Any) -> None:
    settings.PREDICTION_TIMEOUT = 10
    version = priced(user, per_second="0.01")
    services.caps_update(user.account, D("0.24"))
    run(create(version, user), 5)  # spent 0.05
    create(version, user)  # holds 0.10
    with pytest.raises(PaymentRequired, match=r"monthly spend cap of \$0.24"):
        create(version, user)  # 0.05 + 0.10 + 0.10 > 0.24


def test_token_cap_applies_to_that_token_only(user: Any, settings: Any) -> None:
    settings.PREDICTION_TIMEOUT = 10
    version = priced(user, per_second="0.01")
    capped, _ = ApiToken.create_for(user, "ci")
    other, _ = ApiToken.create_for(user, "other")
    services.token_cap_update(capped, D("0.15"))
    create(version, user, capped)
    with pytest.raises(PaymentRequired, match="API token"):
        create(version, user, capped)
    create(version, user, other)
    services.token_cap_update(capped, None)
    assert not TokenCap.objects.exists()
    create(version, user, capped)


def test_failed_invoice_blocks_paid_predictions_only(user: Any) -> None:
    paid = priced(user)
    free = priced(user, "free", unit_price="0", example="hello-concurrent")
    billing = services.billing_for(user.account)
    BillingAccount.objects.filter(pk=billing.pk).update(payment_failed_invoice="in_x")
    with pytest.raises(PaymentRequired, match="invoice"):
        create(paid, user)
    assert create(free, user).cost is None  # free models still run


def test_postpaid_needs_a_card_once_stripe_is_configured(user: Any, settings: Any) -> None:
    version = priced(user)
    create(version, user)  # without Stripe: recorded, capped, not charged
    settings.STRIPE_SECRET_KEY = "sk_test_configured"
    with pytest.raises(PaymentRequired):
        create(version, user)
    BillingAccount.objects.filter(account=user.account).update(has_payment_method=True)
    create(version, user)


def test_quote_and_price_summary(user: Any, settings: Any) -> None:
    settings.PREDICTION_TIMEOUT = 60
    version = priced(user, per_second="0.000225")
    quote = pricing.quote(version)
    assert quote["pricing"] == "per_second"
    assert quote["hardware"]["price_per_second"] == "0.000225"
    assert quote["max_cost"] == "0.013500"
    assert pricing.price_summary(version) == "$0.000225 per second on CPU"
    flat = priced(
        user,
        "flat",
        unit_price="0.0025",
        price_unit=Version.PriceUnit.OUTPUT_ITEM,
        example="hello-concurrent",
    )
    assert pricing.quote(flat)["unit_price"] == "0.002500"
    assert pricing.price_summary(flat) == "$0.0025 per output"


def test_quote_api_owner_and_outsider(user: Any, api: Any, outsider_api: Any) -> None:
    version = priced(user, per_second="0.001")
    response = api.get("/v1/billing/quote", {"version": "alice/hello"})
    assert response.status_code == 200
    assert response.json()["max_cost"] == str(
        pricing.worst_case(version, version.model.default_hardware)
    )
    assert outsider_api.get("/v1/billing/quote", {"version": version.id}).status_code == 200
    version.model.visibility = "private"
    version.model.save()
    assert outsider_api.get("/v1/billing/quote", {"version": version.id}).status_code == 404
    assert api.get("/v1/billing/quote").status_code == 400
    balance = api.get("/v1/billing").json()
    assert balance["credit_balance"] == "0.000000" and balance["mode"] == "postpaid"


def test_grant_credits_command_is_idempotent_per_reference(user: Any, capsys: Any) -> None:
    call_command("grant_credits", "alice", "12.50", "--reference", "promo-1")
    call_command("grant_credits", "alice", "12.50", "--reference", "promo-1")
    assert "Already granted" in capsys.readouterr().out
    assert services.billing_for(user.account).credit_balance == D("12.5")
    assert CreditGrant.objects.count() == 1
    other = UserFactory(username="bob")
    call_command("grant_credits", "bob", "1")
    assert services.billing_for(other.account).credit_balance == D(1)


def test_set_price_command(user: Any, capsys: Any) -> None:
    version = priced(user)
    call_command("set_price", "alice/hello", "0.02", "--per", "output_item")
    version.refresh_from_db()
    assert version.unit_price == D("0.02") and version.price_unit == "output_item"
    call_command("set_price", "alice/hello", "--clear")
    call_command("set_price", "--hardware", "cpu", "0.0002")
    version = Version.objects.select_related("model__default_hardware").get(pk=version.pk)
    assert version.unit_price is None
    assert pricing.price_summary(version) == "$0.0002 per second on CPU"
    with pytest.raises(CommandError, match="price: must be zero or more"):
        call_command("set_price", "alice/hello", "-1")


def _locks_billing(version: Version, user: Any) -> bool:
    """Whether creating (and settling) one prediction took the billing row's lock."""
    with CaptureQueriesContext(connection) as queries:
        run(create(version, user), 1)
    table = BillingAccount._meta.db_table
    return any(
        "FOR UPDATE" in query["sql"] and f'FROM "{table}"' in query["sql"] for query in queries
    )


def test_only_a_limited_account_takes_the_billing_lock(user: Any, settings: Any) -> None:
    """Nothing to enforce (postpaid, no cap, no credit): creates and settles don't queue behind
    one another on the billing row. A cap or credit brings the lock back."""
    assert connection.vendor == "postgresql", "make test runs the suite on PostgreSQL (row locks)"
    settings.PREDICTION_TIMEOUT = 10
    version = priced(user, per_second="0.01")
    assert not _locks_billing(version, user)
    services.caps_update(user.account, D("100"))
    assert _locks_billing(version, user)
    services.caps_update(user.account, None)
    prepaid(user, "10")
    assert _locks_billing(version, user)
