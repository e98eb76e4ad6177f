"""Property tests: random streams of predictions against the real services and PostgreSQL.

An independent model of the rules (written here with plain Decimal arithmetic) predicts which
creates are refused and what each prediction costs; the database must agree, entries must sum to
the costs, nothing may be billed twice, and a prepaid balance may never go below zero.
"""

from __future__ import annotations

import itertools
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
from django.db.models import Sum
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from marketplace.accounts.models import ApiToken
from marketplace.billing import services
from marketplace.billing.models import BillingAccount, Reservation, UsageEntry
from marketplace.catalog.models import Hardware, Version
from marketplace.predictions.models import Prediction
from marketplace.predictions.services import PaymentRequired, prediction_cancel, prediction_create
from tests.billing.conftest import priced
from tests.billing.helpers import run
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
D = Decimal
TIMEOUT = 20
MAX_ITEMS = 3
_names = itertools.count()

prices = st.sampled_from(["0", "0.000100", "0.000725", "0.0115", "0.05"])
ops = st.lists(
    st.one_of(
        st.tuples(st.just("create"), st.booleans(), st.booleans()),  # flat version?, via token?
        st.tuples(
            st.just("finish"),
            st.integers(0, 50),
            st.floats(0, TIMEOUT * 1.5, allow_nan=False),
            st.sampled_from(["succeeded", "failed", "canceled"]),
            st.integers(0, 5),
        ),
        st.tuples(st.just("cancel"), st.integers(0, 50)),
        st.tuples(st.just("grant"), st.sampled_from(["0.05", "0.3", "1"])),
    ),
    max_size=25,
)


def q6(value: Decimal) -> Decimal:
    return value.quantize(D("0.000001"), rounding=ROUND_HALF_UP)


class Oracle:
    """The billing rules, restated."""

    def __init__(self, per_second: Decimal, flat: Decimal, per_item: bool, prepaid: bool):
        self.per_second, self.flat, self.per_item, self.prepaid = (
            per_second,
            flat,
            per_item,
            prepaid,
        )
        self.balance = D(0)
        self.spent = D(0)
        self.token_spent = D(0)
        self.holds: dict[str, tuple[Decimal, bool]] = {}

    def worst(self, flat: bool) -> Decimal:
        if flat:
            return q6(self.flat * (MAX_ITEMS if self.per_item else 1))
        return q6(self.per_second * TIMEOUT)

    def accepts(self, flat: bool, token: bool, cap: Decimal | None, token_cap: Decimal | None):
        worst = self.worst(flat)
        if worst == 0:
            return True
        held = sum((a for a, _ in self.holds.values()), D(0))
        token_held = sum((a for a, t in self.holds.values() if t), D(0))
        if cap is not None and self.spent + held + worst > cap:
            return False
        if token and token_cap is not None and self.token_spent + token_held + worst > token_cap:
            return False
        return not (self.prepaid and self.balance - held < worst)

    def cost(self, flat: bool, seconds: float, status: str, items: int) -> Decimal:
        billed = min(D(str(seconds)).quantize(D("0.001"), rounding=ROUND_HALF_UP), D(TIMEOUT))
        if not flat:
            return q6(self.per_second * billed)
        if status != "succeeded":
            return D(0)
        return q6(self.flat * (min(items, MAX_ITEMS) if self.per_item else 1))


@pytest.fixture
def versions(user: Any, settings: Any) -> tuple[Version, Version]:
    settings.PREDICTION_TIMEOUT = TIMEOUT
    settings.BILLING_MAX_OUTPUT_ITEMS = MAX_ITEMS
    return priced(user), priced(user, "flat", unit_price="0.01", example="hello-concurrent")


@hsettings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    stream=ops,
    per_second=prices,
    flat_price=prices,
    per_item=st.booleans(),
    prepaid=st.booleans(),
    cap=st.one_of(st.none(), st.sampled_from(["0", "0.2", "0.5", "2"])),
    token_cap=st.one_of(st.none(), st.sampled_from(["0", "0.1", "0.4"])),
)
def test_random_prediction_streams_keep_the_books_straight(
    versions: tuple[Version, Version],
    stream: list[tuple[Any, ...]],
    per_second: str,
    flat_price: str,
    per_item: bool,
    prepaid: bool,
    cap: str | None,
    token_cap: str | None,
) -> None:
    timed, flat = versions
    Hardware.objects.filter(sku="cpu").update(price_per_second=D(per_second))
    unit = Version.PriceUnit.OUTPUT_ITEM if per_item else Version.PriceUnit.PREDICTION
    Version.objects.filter(pk=flat.pk).update(unit_price=D(flat_price), price_unit=unit)
    timed = Version.objects.select_related("model__default_hardware").get(pk=timed.pk)
    flat = Version.objects.select_related("model__default_hardware").get(pk=flat.pk)
    # A fresh account per example: examples share the test's database transaction.
    customer = UserFactory(username=f"prop{next(_names)}")
    token, _ = ApiToken.create_for(customer)
    billing = services.billing_for(customer.account)
    billing.mode = BillingAccount.Mode.PREPAID if prepaid else BillingAccount.Mode.POSTPAID
    billing.save(update_fields=["mode"])
    account_cap = D(cap) if cap is not None else None
    services.caps_update(customer.account, account_cap)
    tcap = D(token_cap) if token_cap is not None else None
    services.token_cap_update(token, tcap)
    oracle = Oracle(D(per_second), D(flat_price), per_item, prepaid)
    open_: list[tuple[Prediction, bool, bool]] = []
    expected_costs: dict[str, Decimal] = {}

    for op in stream:
        if op[0] == "grant":
            services.credits_grant(
                customer.account, D(op[1]), source="staff", reference=f"g{next(_names)}"
            )
            oracle.balance += D(op[1])
        elif op[0] == "create":
            _, is_flat, via_token = op
            should = oracle.accepts(is_flat, via_token, account_cap, tcap)
            try:
                prediction = prediction_create(
                    version=flat if is_flat else timed,
                    input={"text": "x"},
                    account=customer.account,
                    created_by=customer,
                    created_by_token=token if via_token else None,
                )
            except PaymentRequired:
                assert not should, "refused a prediction the rules allow"
                continue
            assert should, "accepted a prediction the rules refuse"
            oracle.holds[prediction.id] = (oracle.worst(is_flat), via_token)
            open_.append((prediction, is_flat, via_token))
        elif open_:
            prediction, is_flat, via_token = open_.pop(op[1] % len(open_))
            oracle.holds.pop(prediction.id)
            if op[0] == "cancel":
                prediction = prediction_cancel(prediction)
                expected_costs[prediction.id] = D(0)
            else:
                _, _, seconds, status, items = op
                prediction = run(prediction, seconds, status, output=["i"] * items)
                cost = oracle.cost(is_flat, seconds, status, items)
                expected_costs[prediction.id] = cost
                used = min(cost, oracle.balance)
                oracle.balance -= used
                oracle.spent += cost
                if via_token:
                    oracle.token_spent += cost
            assert prediction.cost == expected_costs[prediction.id]

        billing.refresh_from_db()
        assert billing.credit_balance >= 0
        assert billing.credit_balance == oracle.balance
        held = services.reserved(billing)
        if prepaid:
            assert billing.credit_balance >= held
        if account_cap is not None:
            assert services.month_spend(billing) + held <= account_cap

    entries = UsageEntry.objects.filter(billing=billing)
    finished = Prediction.objects.filter(account=customer.account, cost__isnull=False)
    assert finished.count() == len(expected_costs)
    assert {p.id: p.cost for p in finished} == expected_costs
    ran = [p for p in finished if p.started_at is not None]
    assert sorted(e.prediction_id for e in entries) == sorted(p.id for p in ran)
    total = entries.aggregate(s=Sum("amount"))["s"] or D(0)
    assert total == sum(expected_costs.values(), D(0))
    assert Reservation.objects.filter(billing=billing).count() == len(open_)
