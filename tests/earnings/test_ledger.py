"""The earning rules through the real settle path (prediction_finish) and PostgreSQL."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from marketplace.billing import pricing, services
from marketplace.billing.models import UsageEntry
from marketplace.catalog.models import Version
from marketplace.earnings import ledger, reports
from marketplace.earnings.models import Earning
from marketplace.predictions.models import Prediction
from marketplace.predictions.services import prediction_create
from tests.billing.helpers import run
from tests.earnings.conftest import flat, marked_up, organization, payer, use

pytestmark = pytest.mark.django_db
D = Decimal


def test_a_flat_price_pays_its_owner_less_the_platform_fee(user: Any) -> None:
    version = flat(user, price="0.05")
    bob = payer("bob")
    predictions = [use(version, bob) for _ in range(3)]

    earnings = Earning.objects.order_by("pk")
    assert [e.usage.prediction_id for e in earnings] == [p.id for p in predictions]
    for earning in earnings:
        assert (earning.charged, earning.owner_share, earning.fee, earning.amount) == (
            D("0.05"),
            D("0.05"),
            D("0.01"),
            D("0.04"),
        )
        assert earning.owner == user.account and earning.fee_percent == D("20")
        assert earning.created_at == earning.usage.created_at
    totals = reports.totals(user.account)
    # Paid from bob's credit: collected at once.
    assert (totals.available, totals.pending, totals.earned) == (D("0.12"), D(0), D("0.12"))
    assert reports.totals(bob.account).earned == 0


def test_a_markup_on_hardware_time_is_the_owners_part(user: Any, settings: Any) -> None:
    settings.PREDICTION_TIMEOUT = 100
    version = marked_up(user, markup="0.00125")  # CPU is $0.0001/s
    assert pricing.per_second(version, version.model.default_hardware) == D("0.00135")
    assert pricing.worst_case(version, version.model.default_hardware) == D("0.135")
    quote = pricing.quote(version)
    assert quote["price_per_second"] == "0.00135"
    assert quote["creator_markup_per_second"] == "0.00125"
    assert quote["hardware"]["price_per_second"] == "0.0001"
    assert pricing.price_summary(version) == (
        "$0.00135 per second on CPU (includes $0.00125 for the model's creator)"
    )

    bob = payer("bob")
    ok = use(version, bob, 2.5)
    failed = use(version, bob, 0.333, status=Prediction.Status.FAILED)
    assert ok.cost == D("0.003375")  # 2.5 s x $0.00135
    entry = UsageEntry.objects.get(prediction=ok)
    assert entry.price_per_second == D("0.00135")
    earning = Earning.objects.get(usage=entry)
    assert earning.owner_share == D("0.003125")  # 2.5 s x $0.00125
    assert earning.fee == D("0.000625")
    assert earning.amount == D("0.0025")
    # Hardware time is charged whatever the outcome, and so is the markup on it.
    late = Earning.objects.get(usage__prediction=failed)
    assert failed.cost == D("0.000450")  # 0.333 x 0.00135 = 0.00044955
    assert late.owner_share == D("0.000416")  # 0.333 x 0.00125 = 0.00041625
    assert late.fee == D("0.000083")  # 20% of 0.000416 = 0.0000832
    assert late.amount == D("0.000333")


def test_a_flat_price_earns_nothing_when_the_prediction_fails(user: Any) -> None:
    version = flat(user, price="0.05")
    bob = payer("bob")
    use(version, bob, status=Prediction.Status.FAILED)
    use(version, bob, status=Prediction.Status.CANCELED)
    assert UsageEntry.objects.count() == 2 and not Earning.objects.exists()


def test_unpriced_versions_earn_nothing(user: Any) -> None:
    version = marked_up(user, markup="0")
    use(version, payer("bob"), 3)
    assert UsageEntry.objects.get().amount == D("0.0003")
    assert not Earning.objects.exists()


def test_no_earning_from_the_owners_own_people_or_organisations(user: Any) -> None:
    """alice owns alice/paid; acme (alice and mia) owns acme/tool; carol is an outsider who
    also belongs to zeta."""
    mine = flat(user, "paid")
    bob = payer("bob")
    mia, carol = payer("mia"), payer("carol")
    acme = organization("acme", alice="member", mia="owner")
    zeta = organization("zeta", carol="owner")
    tool = flat(acme, "tool", example="hello-concurrent")
    services.credits_grant(user.account, D(100), source="staff", reference="alice")

    nothing = [
        use(mine, user),  # her own run
        use(mine, user, account=acme),  # her own run, billed to her organisation
        use(mine, mia, account=acme),  # her organisation paying her
        use(tool, mia, account=acme),  # acme running its own model
        use(tool, mia),  # an acme member running acme's model on her own account
        use(tool, user),  # another acme member, likewise
    ]
    earning = [
        use(mine, bob),
        use(tool, carol),
        use(tool, carol, account=zeta),  # another organisation pays acme
        use(mine, carol, account=zeta),
    ]
    assert all(p.cost == D("0.05") for p in nothing + earning)
    earned = {e.usage.prediction_id: e.owner.username for e in Earning.objects.all()}
    assert earned == {
        earning[0].id: "alice",
        earning[1].id: "acme",
        earning[2].id: "acme",
        earning[3].id: "alice",
    }


def test_split_is_exact_to_the_micro_dollar() -> None:
    parts = ledger.split(D("0.05"), D("0.05"), D("33.33"))
    assert (parts.owner_share, parts.fee, parts.earning) == (
        D("0.05"),
        D("0.016665"),  # 0.0166650 half up
        D("0.033335"),
    )
    assert parts.earning + parts.fee + (parts.charged - parts.owner_share) == parts.charged
    assert parts.platform == D("0.016665")
    assert ledger.split(D("0.01"), D("0.02"), D(20)).owner_share == D("0.01")  # at most charged
    assert ledger.split(D("0.01"), D("-1"), D(20)).earning == 0
    assert ledger.split(D("0.000001"), D("0.000001"), D(50)).fee == D("0.000001")  # half up
    assert ledger.split(D("0.003"), D("0.003"), D(0)).earning == D("0.003")
    assert ledger.split(D("0.003"), D("0.003"), D(100)).earning == 0


def test_the_owner_share_never_exceeds_what_the_reservation_allowed(
    user: Any, settings: Any
) -> None:
    version = flat(user, price="0.05")
    bob = payer("bob")
    prediction = prediction_create(
        version=version, input={"text": "x"}, account=bob.account, created_by=bob
    )
    # The owner doubles the price while it runs: the payer pays what was quoted.
    Version.objects.filter(pk=version.pk).update(unit_price=D("0.10"))
    prediction = run(prediction, 1)
    earning = Earning.objects.get()
    assert prediction.cost == D("0.05") == earning.charged == earning.owner_share
    assert earning.amount == D("0.04")


def test_invoiced_earnings_stay_pending_until_the_invoice_is_paid(user: Any) -> None:
    version = flat(user, price="0.05")
    dave = payer("dave", credit="0.02", mode="postpaid")  # part credit, the rest invoiced
    erin = payer("erin", credit=None, mode="postpaid")
    use(version, dave)
    use(version, erin)
    entries = {e.billing.account.username: e for e in UsageEntry.objects.all()}
    assert entries["dave"].credit_applied == D("0.02")
    totals = reports.totals(user.account)
    assert (totals.pending, totals.available) == (D("0.08"), D(0))
    assert Earning.objects.filter(ledger.collected()).count() == 0
