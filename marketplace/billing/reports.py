"""Read-only views of the ledger for the billing page: daily spend, usage of one's models."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from marketplace.accounts.models import Account
from marketplace.billing.models import BillingAccount, UsageEntry

# Colour-blind-safe palette (Okabe-Ito), then grey for "other".
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442"]
OTHER = "#999999"


def entries_since(billing: BillingAccount, days: int) -> QuerySet[UsageEntry]:
    since = timezone.now() - timedelta(days=days)
    return (
        UsageEntry.objects.filter(billing=billing, created_at__gte=since)
        .select_related("model__owner", "hardware", "prediction", "user")
        .order_by("-created_at")
    )


@dataclass
class Bar:
    x: float
    y: float
    height: float
    color: str
    title: str


@dataclass
class Chart:
    width: int = 720
    height: int = 200
    bars: list[Bar] = field(default_factory=list)
    legend: list[tuple[str, str]] = field(default_factory=list)
    max_total: Decimal = Decimal(0)
    first_day: date | None = None
    last_day: date | None = None
    total: Decimal = Decimal(0)


def daily_chart(billing: BillingAccount, days: int = 30) -> Chart:
    """Stacked daily bars of spend, one colour per model + hardware pair (top 7, then other)."""
    first = timezone.now().date() - timedelta(days=days - 1)
    rows = (
        UsageEntry.objects.filter(billing=billing, created_at__date__gte=first)
        .annotate(day=TruncDate("created_at"))
        .values("day", "model__owner__username", "model__name", "hardware__name")
        .annotate(amount=Sum("amount"))
    )
    return stacked_chart(
        (
            (
                row["day"],
                f"{row['model__owner__username']}/{row['model__name']} · {row['hardware__name']}",
                row["amount"],
            )
            for row in rows
        ),
        days,
    )


def stacked_chart(rows: Iterable[tuple[date, str, Decimal]], days: int = 30) -> Chart:
    """Stacked daily bars of (day, series, amount) rows over the last ``days`` days, one colour
    per series (the top 7, then "other")."""
    today = timezone.now().date()
    first = today - timedelta(days=days - 1)
    per_series: dict[str, Decimal] = defaultdict(Decimal)
    cells: dict[tuple[date, str], Decimal] = defaultdict(Decimal)
    for day, label, amount in rows:
        per_series[label] += amount
        cells[(day, label)] += amount
    ranked = sorted(per_series, key=lambda k: (-per_series[k], k))
    colors = {label: PALETTE[i] for i, label in enumerate(ranked[: len(PALETTE)])}
    chart = Chart(first_day=first, last_day=today, total=sum(per_series.values(), Decimal(0)))
    chart.legend = [(label, colors.get(label, OTHER)) for label in ranked[: len(PALETTE)]]
    if len(ranked) > len(PALETTE):
        chart.legend.append(("other", OTHER))
    totals: dict[date, Decimal] = defaultdict(Decimal)
    for (day, _), amount in cells.items():
        totals[day] += amount
    chart.max_total = max(totals.values(), default=Decimal(0))
    if not chart.max_total:
        return chart
    slot = chart.width / days
    for i in range(days):
        day = first + timedelta(days=i)
        y = float(chart.height)
        stack: dict[str, Decimal] = defaultdict(Decimal)
        for label in ranked:
            cell = cells.get((day, label))
            if cell:
                stack[label if label in colors else "other"] += cell
        for label, amount in stack.items():
            h = float(amount / chart.max_total) * chart.height
            y -= h
            chart.bars.append(
                Bar(
                    x=round(i * slot + 1, 2),
                    y=round(y, 2),
                    height=round(h, 2),
                    color=colors.get(label, OTHER),
                    title=f"{day:%b %d} {label}: ${amount}",
                )
            )
    return chart


def usage_of_my_models(account: Account, days: int = 30) -> list[dict[str, Any]]:
    """How much other accounts used the models ``account`` owns."""
    since = timezone.now() - timedelta(days=days)
    rows: Any = (
        UsageEntry.objects.filter(model__owner=account, created_at__gte=since)
        .filter(~Q(billing__account=account))
        .values("model__name")
        .annotate(
            predictions=Count("id"),
            seconds=Sum("seconds"),
            amount=Sum("amount"),
            accounts=Count("billing", distinct=True),
        )
        .order_by("-amount", "model__name")
    )
    return list(rows)
