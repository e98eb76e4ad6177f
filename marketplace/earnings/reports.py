"""Read-only views of an owner's earnings: totals, by model, by day, payouts, prices and the
monthly statement."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, QuerySet, Sum
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from marketplace.accounts.models import Account
from marketplace.billing import pricing
from marketplace.billing.reports import Chart, stacked_chart
from marketplace.catalog.models import Model
from marketplace.earnings.ledger import collected
from marketplace.earnings.models import (
    Earning,
    EarningReversal,
    Payout,
    TransferReversal,
)

ZERO = Decimal(0)


def _sum(queryset: QuerySet[Any], field: str = "amount") -> Decimal:
    return Decimal(queryset.aggregate(s=Coalesce(Sum(field), ZERO))["s"])


def _dollars(queryset: QuerySet[Any]) -> Decimal:
    """The sum of ``amount_cents``, in dollars."""
    return Decimal(queryset.aggregate(s=Coalesce(Sum("amount_cents"), 0))["s"]) / 100


@dataclass(frozen=True)
class Totals:
    pending: Decimal  # earned, but the payer has not paid yet
    available: Decimal  # collected, waiting for the next payout
    in_transit: Decimal  # in payouts not sent yet
    paid: Decimal  # sent to the owner's Stripe account, less what was clawed back
    reversed: Decimal  # taken back by refunds and disputes
    earned: Decimal  # everything earned, less reversals


def totals(owner: Account) -> Totals:
    earnings = Earning.objects.filter(owner=owner)
    reversals = EarningReversal.objects.filter(owner=owner)
    unclaimed = earnings.filter(payout__isnull=True)
    open_reversals = reversals.filter(
        payout__isnull=True, transfer_reversal__isnull=True, earning__payout__isnull=True
    )
    paid = Payout.objects.filter(owner=owner, status=Payout.Status.PAID)
    clawed = TransferReversal.objects.filter(payout__owner=owner)
    return Totals(
        pending=_sum(unclaimed.exclude(collected()))
        - _sum(open_reversals.exclude(collected("earning__"))),
        available=_sum(unclaimed.filter(collected()))
        - _sum(open_reversals.filter(collected("earning__"))),
        in_transit=_dollars(Payout.objects.filter(owner=owner, status=Payout.Status.PENDING)),
        paid=_dollars(paid) - _dollars(clawed),
        reversed=_sum(reversals),
        earned=_sum(earnings) - _sum(reversals),
    )


def by_model(owner: Account, days: int | None = None) -> list[dict[str, Any]]:
    earnings = Earning.objects.filter(owner=owner)
    if days is not None:
        earnings = earnings.filter(created_at__gte=timezone.now() - timedelta(days=days))
    rows = (
        earnings.values("model__owner__username", "model__name")
        .annotate(
            predictions=Count("id"),
            charged=Sum("charged"),
            fees=Sum("fee"),
            earned=Sum("amount"),
        )
        .order_by("-earned", "model__name")
    )
    return [
        {
            "model": f"{r['model__owner__username']}/{r['model__name']}",
            "predictions": r["predictions"],
            "charged": r["charged"],
            "fees": r["fees"],
            "earned": r["earned"],
        }
        for r in rows
    ]


def by_day(owner: Account, days: int = 30) -> list[tuple[date, str, Decimal]]:
    first = timezone.now().date() - timedelta(days=days - 1)
    rows = (
        Earning.objects.filter(owner=owner, created_at__date__gte=first)
        .annotate(day=TruncDate("created_at"))
        .values("day", "model__owner__username", "model__name")
        .annotate(amount=Sum("amount"))
        .order_by("day")
    )
    return [
        (r["day"], f"{r['model__owner__username']}/{r['model__name']}", r["amount"]) for r in rows
    ]


def daily_chart(owner: Account, days: int = 30) -> Chart:
    return stacked_chart(by_day(owner, days), days)


def prices(owner: Account, limit: int = 50) -> list[dict[str, Any]]:
    """The owner's models and what their latest versions cost others to run."""
    out = []
    models = Model.objects.filter(owner=owner).select_related("owner", "default_hardware")
    for model in models.order_by("name")[:limit]:
        version = model.versions.filter(hidden=False).order_by("-created_at").first()
        if version is None:
            continue
        version.model = model
        out.append(
            {
                "model": model,
                "version": version,
                "price": pricing.price_summary(version),
                "earns": version.unit_price is not None or bool(version.markup_per_second),
            }
        )
    return out


def month_bounds(month: date) -> tuple[datetime, datetime]:
    start = datetime(month.year, month.month, 1, tzinfo=timezone.get_current_timezone())
    end = datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=start.tzinfo)
    return start, end


STATEMENT_HEADER = [
    "date",
    "kind",
    "reference",
    "model",
    "charged_usd",
    "owner_share_usd",
    "fee_percent",
    "fee_usd",
    "amount_usd",
    "status",
    "payout",
    "stripe_id",
]


def _earning_status(earning: Earning) -> str:
    if earning.payout is not None:
        return "paid out" if earning.payout.status == Payout.Status.PAID else "in payout"
    return "available" if getattr(earning, "is_collected", False) else "pending"


def statement(owner: Account, start: datetime, end: datetime) -> Iterator[list[Any]]:
    """One row per earning, reversal, payout and clawback in [start, end). Earnings and payouts
    are positive; reversals and clawbacks negative."""
    period = {"created_at__gte": start, "created_at__lt": end}
    earnings = (
        Earning.objects.filter(owner=owner, **period)
        .select_related("model__owner", "payout")
        .annotate(is_collected=Count("pk", filter=collected()))
        .order_by("created_at", "pk")
    )
    for e in earnings.iterator():
        yield [
            e.created_at.isoformat(),
            "earning",
            f"earning-{e.pk}",
            e.model.full_name,
            e.charged,
            e.owner_share,
            e.fee_percent,
            e.fee,
            e.amount,
            _earning_status(e),
            e.payout_id or "",
            "",
        ]
    reversals = (
        EarningReversal.objects.filter(owner=owner, **period)
        .select_related("earning__model__owner")
        .order_by("created_at", "pk")
    )
    for r in reversals.iterator():
        yield [
            r.created_at.isoformat(),
            f"reversal ({r.reason})",
            f"earning-{r.earning_id}",
            r.earning.model.full_name,
            "",
            "",
            "",
            "",
            -r.amount,
            "clawed back" if r.transfer_reversal_id else "netted" if r.payout_id else "open",
            r.payout_id or "",
            r.reference,
        ]
    for p in Payout.objects.filter(owner=owner, **period).order_by("created_at", "pk"):
        yield [
            p.created_at.isoformat(),
            "payout",
            f"payout-{p.pk}",
            "",
            "",
            "",
            "",
            "",
            p.total,
            p.status,
            p.pk,
            p.stripe_transfer_id,
        ]
    clawbacks = TransferReversal.objects.filter(payout__owner=owner, **period).order_by(
        "created_at", "pk"
    )
    for t in clawbacks:
        yield [
            t.created_at.isoformat(),
            "clawback",
            f"transfer-reversal-{t.pk}",
            "",
            "",
            "",
            "",
            "",
            -Decimal(t.amount_cents) / 100,
            "sent" if t.done else "pending",
            t.payout_id,
            t.stripe_reversal_id,
        ]
