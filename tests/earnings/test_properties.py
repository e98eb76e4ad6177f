"""Property test: random streams of predictions, prices, fee changes, invoice payments, refunds,
disputes and payout runs, through the real services, PostgreSQL and the loopback Stripe server.

An independent restatement of the rules (plain Decimal arithmetic here) predicts every charge,
owner share, fee, earning and reversal. The books must balance to the micro-dollar — what payers
were charged is exactly what owners earned plus what the platform kept — and the cents that
reached the owner's Stripe account (transfers less reversals) must be exactly the whole cents of
the collected, unreversed earnings, with no transfer made twice.
"""

from __future__ import annotations

import itertools
import secrets
from datetime import UTC, datetime
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any

import httpx
import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from marketplace.accounts.models import Account, Membership
from marketplace.billing import invoicing, services
from marketplace.billing.models import BillingAccount, InvoiceRun, UsageEntry
from marketplace.catalog.models import Hardware, Model, Version
from marketplace.earnings import connect, ledger, payouts
from marketplace.earnings.models import Earning, EarningReversal, Payout
from marketplace.predictions.services import prediction_create
from tests.billing.conftest import StripeServer
from tests.billing.helpers import run as finish
from tests.earnings.conftest import card, connected, flat, payer
from tests.factories import UserFactory, cpu

pytestmark = pytest.mark.django_db
D = Decimal
TIMEOUT = 20
MAX_ITEMS = 3
_n = itertools.count()

fees = st.sampled_from(["0", "12.5", "20", "33.33", "100"])
runs = st.lists(
    st.tuples(
        st.just("run"),
        st.sampled_from(["a", "b", "a", "b", "self", "org"]),  # who pays
        st.sampled_from(["pred", "item", "timed"]),  # which model
        st.floats(0, TIMEOUT * 1.5, allow_nan=False),
        st.sampled_from(["succeeded", "succeeded", "succeeded", "failed", "canceled"]),
        st.integers(0, 5),
    ),
    min_size=1,
    max_size=6,
)
# A round: some runs, then perhaps a fee change, an invoice, a refund or dispute, a payout run.
rounds = st.lists(
    st.tuples(
        runs,
        st.one_of(st.none(), st.tuples(st.just("fee"), fees)),
        st.one_of(st.none(), st.just(("invoice",))),
        st.one_of(
            st.none(),
            st.tuples(st.just("refund"), st.sampled_from(["0.1", "0.5", "1"])),
            st.just(("dispute",)),
        ),
        st.one_of(st.none(), st.just(("payout",))),
    ),
    min_size=1,
    max_size=4,
)


def _ops(plan: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return [op for runs_, *rest in plan for op in [*runs_, *rest] if op is not None]


def q6(value: Decimal) -> Decimal:
    return value.quantize(D("0.000001"), rounding=ROUND_HALF_UP)


class Oracle:
    """The earning rules, restated."""

    def __init__(self, prices: dict[str, Decimal], hardware: Decimal, fee: Decimal):
        self.prices, self.hardware, self.fee = prices, hardware, fee

    def charge(
        self, model: str, seconds: float, status: str, items: int
    ) -> tuple[Decimal, Decimal]:
        """(what the payer is charged, the owner's part of it)."""
        if model == "timed":
            billed = min(D(str(seconds)).quantize(D("0.001"), rounding=ROUND_HALF_UP), D(TIMEOUT))
            markup = self.prices["timed"]
            return q6((self.hardware + markup) * billed), q6(markup * billed)
        if status != "succeeded":
            return D(0), D(0)
        units = 1 if model == "pred" else min(items, MAX_ITEMS)
        amount = q6(self.prices[model] * units)
        return amount, amount

    def earning(self, part: Decimal) -> tuple[Decimal, Decimal]:
        """(fee, earning) of an owner's part."""
        fee = q6(part * self.fee / 100)
        return fee, part - fee


def _copy(base: Version, owner: Account, name: str, **prices: Any) -> Version:
    """A model of ``owner`` with ``base``'s schema (runs here never reach a Cog server)."""
    model = Model.objects.create(owner=owner, name=name, default_hardware=cpu())
    version = Version.objects.create(
        id=secrets.token_hex(32),
        model=model,
        openapi_schema=base.openapi_schema,
        cog_version=base.cog_version,
        source_path=base.source_path,
        **prices,
    )
    return Version.objects.select_related("model__default_hardware", "model__owner").get(
        pk=version.pk
    )


@pytest.fixture
def base(user: Any, settings: Any) -> Version:
    settings.PREDICTION_TIMEOUT = TIMEOUT
    settings.BILLING_MAX_OUTPUT_ITEMS = MAX_ITEMS
    settings.EARNINGS_MIN_PAYOUT = D("0.01")
    return flat(user, "base")


def _charge_of(run: InvoiceRun, stripe_env: dict[str, str]) -> str:
    headers = {"Authorization": f"Bearer {stripe_env['STRIPE_SECRET_KEY']}"}
    api = stripe_env["STRIPE_API_BASE"]
    payments = httpx.get(
        f"{api}/v1/invoice_payments?invoice={run.stripe_invoice_id}", headers=headers
    )
    intent = payments.json()["data"][0]["payment"]["payment_intent"]
    return str(
        httpx.get(f"{api}/v1/payment_intents/{intent}", headers=headers).json()["latest_charge"]
    )


micro = st.integers(0, 10**9).map(lambda n: D(n) / 10**6)


@given(
    charged=micro,
    owner_part=st.one_of(micro, st.integers(-(10**6), 0).map(D)),
    percent=st.integers(0, 10000).map(lambda n: D(n) / 100),
)
def test_split_balances_to_the_micro_dollar(
    charged: Decimal, owner_part: Decimal, percent: Decimal
) -> None:
    """The pure arithmetic settle uses: every micro-dollar is the owner's or the platform's."""
    parts = ledger.split(charged, owner_part, percent)
    assert parts.earning + parts.platform == charged
    assert 0 <= parts.fee <= parts.owner_share <= charged
    assert parts.owner_share == min(max(owner_part, D(0)), charged)
    assert parts.earning == parts.owner_share - q6(parts.owner_share * percent / 100)
    for value in (parts.fee, parts.earning, parts.platform):
        assert value == q6(value)  # whole micro-dollars


@pytest.mark.slow
@hsettings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    plan=rounds,
    fee=fees,
    pred=st.sampled_from(["0.01", "0.0333", "0.5", "0.000001"]),
    item=st.sampled_from(["0.02", "0.000007", "1.25"]),
    markup=st.sampled_from(["0", "0.0001", "0.00123", "0.013"]),
    hardware=st.sampled_from(["0", "0.0001", "0.000725"]),
)
def test_random_streams_keep_owners_platform_and_payers_square(
    base: Version,
    stripe_server: StripeServer,
    stripe_env: dict[str, str],
    settings: Any,
    plan: list[tuple[Any, ...]],
    fee: str,
    pred: str,
    item: str,
    markup: str,
    hardware: str,
) -> None:
    n = next(_n)
    settings.EARNINGS_PLATFORM_FEE_PERCENT = D(fee)
    Hardware.objects.filter(sku="cpu").update(price_per_second=D(hardware))
    owner = UserFactory(username=f"own{n}")
    services.credits_grant(owner.account, D(1000), source="staff", reference=f"own{n}")
    member = UserFactory(username=f"mem{n}")
    org = Account.objects.create(username=f"org{n}", type=Account.Type.ORGANIZATION)
    Membership.objects.create(account=org, user=owner, role="member")
    Membership.objects.create(account=org, user=member, role="owner")
    services.credits_grant(org, D(1000), source="staff", reference=f"org{n}")
    versions = {
        "pred": _copy(base, owner.account, "pred", unit_price=D(pred)),
        "item": _copy(base, owner.account, "item", unit_price=D(item), price_unit="output_item"),
        "timed": _copy(base, owner.account, "timed", markup_per_second=D(markup)),
    }
    a = payer(f"a{n}", credit="1000")
    b = payer(f"b{n}", credit=None, mode=BillingAccount.Mode.POSTPAID)
    card(b, stripe_server)
    runners = {"a": (a, a.account), "b": (b, b.account), "self": (owner, owner.account)}
    runners["org"] = (member, org)
    account = connected(owner, stripe_server)
    oracle = Oracle({"pred": D(pred), "item": D(item), "timed": D(markup)}, D(hardware), D(fee))
    charges: dict[str, Decimal] = {}
    expected: dict[str, tuple[Decimal, Decimal, Decimal, Decimal]] = {}
    period_start = datetime(2000, 1, 1, tzinfo=UTC)
    taken: dict[int, int] = {}  # invoice run → cents refunded or disputed

    for op in _ops(plan):
        if op[0] == "run":
            _, who, model, seconds, status, items = op
            person, billed_to = runners[who]
            prediction = prediction_create(
                version=versions[model],
                input={"text": "x"},
                account=billed_to,
                created_by=person,
            )
            prediction = finish(prediction, seconds, status, output=["o"] * items)
            charge, part = oracle.charge(model, seconds, status, items)
            assert prediction.cost == charge
            charges[prediction.id] = charge
            if who in ("a", "b") and part > 0:  # strangers pay the owner; her own people not
                expected[prediction.id] = (charge, part, *oracle.earning(part))
        elif op[0] == "fee":
            settings.EARNINGS_PLATFORM_FEE_PERCENT = D(op[1])
            oracle.fee = D(op[1])
        elif op[0] == "invoice":
            end = timezone.now()
            run = invoicing.invoice_run_create(services.billing_for(b.account), period_start, end)
            period_start = end
            run = invoicing.invoice_run_push(run)
            assert run.status in (InvoiceRun.Status.PAID, InvoiceRun.Status.EMPTY)
        elif op[0] in ("refund", "dispute"):
            run = (
                InvoiceRun.objects.filter(billing__account=b.account, status="paid")
                .order_by("-pk")
                .first()
            )
            if run is None or taken.get(run.pk, 0) >= run.total_cents:
                continue
            charge_id = _charge_of(run, stripe_env)
            left = run.total_cents - taken.get(run.pk, 0)
            if op[0] == "refund":
                amount = max(1, int(D(left) * D(op[1])))
                httpx.post(
                    f"{stripe_env['STRIPE_API_BASE']}/v1/refunds",
                    data={"charge": charge_id, "amount": amount},
                    headers={"Authorization": f"Bearer {stripe_env['STRIPE_SECRET_KEY']}"},
                ).raise_for_status()
                connect.charge_refunded({"id": charge_id})
            else:
                amount = left
                dispute = stripe_server.control(f"charges/{charge_id}/dispute", "POST")
                connect.dispute_created({"id": dispute["id"]})
            taken[run.pk] = taken.get(run.pk, 0) + amount
        else:
            payouts.payouts_run()
    payouts.payouts_run()

    # Every prediction: the oracle's charge, and an earning exactly where the rules say.
    entries = UsageEntry.objects.filter(prediction_id__in=list(charges)).select_related(
        "invoice_run"
    )
    assert sum((e.amount for e in entries), D(0)) == sum(charges.values(), D(0))
    found = {e.usage_id: e for e in Earning.objects.filter(usage__in=entries)}
    assert all(e.owner_id == owner.account.pk for e in found.values())
    earnings: list[tuple[Earning, UsageEntry]] = []
    platform = D(0)
    for entry in entries:
        want = expected.get(entry.prediction_id)
        got = found.get(entry.pk)
        if want is None:
            assert got is None, entry.prediction_id
            platform += entry.amount
            continue
        assert got is not None, entry.prediction_id
        assert (got.charged, got.owner_share, got.fee, got.amount) == want
        assert got.amount + got.fee == got.owner_share <= got.charged == entry.amount
        earnings.append((got, entry))
        platform += entry.amount - want[3]  # the hardware part and the fee, restated
    # The books: payers' charges = owners' earnings + the platform's part, to the micro-dollar.
    assert sum(charges.values(), D(0)) == sum((g.amount for g, _ in earnings), D(0)) + platform

    # Reversals: the refunded or disputed share of each invoiced earning, never more.
    reversed_total = D(0)
    for got, entry in earnings:
        back = sum((r.amount for r in got.reversals.all()), D(0))
        run_ = entry.invoice_run
        share = taken.get(run_.pk, 0) if run_ is not None else 0
        want_back = q6(got.amount * share / run_.total_cents) if share else D(0)
        assert back == want_back, (got.pk, back, want_back)
        reversed_total += want_back
    assert EarningReversal.objects.filter(owner=owner.account).count() == sum(
        got.reversals.count() for got, _ in earnings
    )

    # The owner's Stripe account got exactly the whole cents of what is collected and kept,
    # each payout as one transfer.
    collected = sum(
        (
            got.amount
            for got, entry in earnings
            if entry.credit_applied == entry.amount
            or (entry.invoice_run is not None and entry.invoice_run.status in ("paid", "empty"))
        ),
        D(0),
    )
    kept = collected - reversed_total
    transfers = stripe_server.state()["objects"].get("transfers", {}).values()
    sent = [t for t in transfers if t["destination"] == account.stripe_account_id]
    net_cents = sum(t["amount"] - t["amount_reversed"] for t in sent)
    assert net_cents == int((kept * 100).to_integral_value(rounding=ROUND_FLOOR))
    ours = Payout.objects.filter(owner=owner.account)
    assert len(sent) == ours.count() == len({p.stripe_transfer_id for p in ours})
    assert all(p.status == Payout.Status.PAID for p in ours)
