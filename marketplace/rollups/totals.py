"""Totals of finished predictions and webhook attempts at a cost that does not grow with history.

``/metrics`` reports all-time counters and histograms. Aggregating the whole predictions table
at each scrape cost over a second at a million rows, so history is rolled up: a
:class:`~marketplace.rollups.models.Rollup` row holds the totals of everything that ended
before its ``until``, and a read adds the rows that ended since (an index range scan on
``completed_at`` / ``attempted_at``). A read that finds ``until`` more than ``ROLL_EVERY``
behind moves it forward to ``now - GRACE`` under a row lock (``SKIP LOCKED``: concurrent
scrapers read the old totals plus a longer tail, which is just as right).

``GRACE`` covers rows that commit after the moment they record: a prediction's ``completed_at``
is taken in ``prediction_finish`` a moment before its transaction commits, and a webhook
attempt's ``attempted_at`` before its request (at most ``WEBHOOK_TIMEOUT``). A row that became
visible more than ``GRACE`` after its own timestamp would be missed by the roll-up; with a
two-minute grace that needs a finish transaction held open for two minutes.

Histograms are stored cumulative per bucket (``le`` counts), which add like plain counts.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, QuerySet, Sum
from django.utils import timezone

from marketplace.predictions.models import Prediction
from marketplace.predictions.webhooks import WebhookAttempt
from marketplace.rollups.models import Rollup

# Seconds; queue and setup waits range from milliseconds to cold starts of many minutes.
PHASE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
GRACE = timedelta(minutes=2)
ROLL_EVERY = timedelta(minutes=1)
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)

Window = Callable[[datetime, datetime | None], dict[str, Any]]


def duration(end: str, start: str) -> ExpressionWrapper:
    return ExpressionWrapper(F(end) - F(start), output_field=DurationField())


def phases(rows: QuerySet[Any], durations: dict[str, ExpressionWrapper]) -> dict[str, Any]:
    """Per phase: ``le`` counts per bucket, ``n`` and ``sum`` (seconds), in one aggregate. A
    phase's duration is null where it does not apply (never ended), and nulls count nowhere."""
    annotated = rows.annotate(**{f"{phase}_s": expr for phase, expr in durations.items()})
    aggregates: dict[str, Any] = {}
    for phase in durations:
        aggregates[f"{phase}_n"] = Count(f"{phase}_s")
        aggregates[f"{phase}_sum"] = Sum(f"{phase}_s")
        for i, bound in enumerate(PHASE_BUCKETS):
            within = Q(**{f"{phase}_s__lte": timedelta(seconds=bound)})
            aggregates[f"{phase}_le_{i}"] = Count("pk", filter=within)
    result = annotated.aggregate(**aggregates)
    out: dict[str, Any] = {}
    for phase in durations:
        total: timedelta | None = result[f"{phase}_sum"]
        out[phase] = {
            "le": [result[f"{phase}_le_{i}"] for i in range(len(PHASE_BUCKETS))],
            "n": result[f"{phase}_n"],
            "sum": total.total_seconds() if total else 0.0,
        }
    return out


def add(a: Any, b: Any) -> Any:
    """Totals added field by field (numbers, lists of numbers, dicts of those)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return {k: add(a[k], b[k]) if k in a and k in b else a.get(k, b.get(k)) for k in a | b}
    if isinstance(a, list) and isinstance(b, list):
        return [x + y for x, y in zip(a, b, strict=True)]
    return a + b


def bucketed(seconds: list[float]) -> dict[str, Any]:
    """:func:`phases`' shape for durations counted here (a few minutes' worth of rows)."""
    return {
        "le": [sum(1 for x in seconds if x <= bound) for bound in PHASE_BUCKETS],
        "n": len(seconds),
        "sum": float(sum(seconds)),
    }


def _predictions(start: datetime, end: datetime | None) -> dict[str, Any]:
    ended = Prediction.objects.filter(status__in=Prediction.TERMINAL, completed_at__gte=start)
    if end is None:
        # The tail since the last roll-up: a few minutes of rows, counted in one fetch rather
        # than compiled into a large aggregate at every scrape.
        rows = list(ended.values_list("status", "created_at", "started_at", "completed_at"))
        status: dict[str, int] = {}
        for row in rows:
            status[row[0]] = status.get(row[0], 0) + 1
        started = [(c, s, d) for _, c, s, d in rows if s is not None]
        return {
            "status": status,
            "queue": bucketed([(s - c).total_seconds() for c, s, _ in started]),
            "run": bucketed([(d - s).total_seconds() for _, s, d in started if d is not None]),
        }
    ended = ended.filter(completed_at__lt=end)
    status = dict(ended.values_list("status").annotate(n=Count("pk")).values_list("status", "n"))
    timings = phases(
        ended.exclude(started_at=None),
        {
            "queue": duration("started_at", "created_at"),
            "run": duration("completed_at", "started_at"),
        },
    )
    return {"status": status, **timings}


def _webhook_attempts(start: datetime, end: datetime | None) -> dict[str, Any]:
    rows = WebhookAttempt.objects.filter(attempted_at__gte=start)
    if end is not None:
        rows = rows.filter(attempted_at__lt=end)
    success = Q(response_status__gte=200, response_status__lt=300)
    return rows.aggregate(success=Count("pk", filter=success), failure=Count("pk", filter=~success))


WINDOWS: dict[str, Window] = {"predictions": _predictions, "webhook_attempts": _webhook_attempts}


def roll(name: str, *, now: datetime | None = None) -> None:
    """Move ``name``'s rollup forward to ``now - GRACE`` (unless another process is doing it)."""
    cutoff = (now or timezone.now()) - GRACE
    window = WINDOWS[name]
    with transaction.atomic():
        Rollup.objects.get_or_create(name=name, defaults={"until": EPOCH, "totals": {}})
        rows = Rollup.objects.filter(name=name)
        if connection.features.has_select_for_update_skip_locked:
            rows = rows.select_for_update(skip_locked=True)
        row = rows.first()
        if row is None or row.until >= cutoff:
            return  # another process holds it, or it is recent enough
        row.totals = (
            add(row.totals, window(row.until, cutoff)) if row.totals else window(row.until, cutoff)
        )
        row.until = cutoff
        row.save()


def totals(name: str) -> dict[str, Any]:
    """Everything of ``name`` that has ended: the rollup plus what ended since."""
    row = Rollup.objects.filter(name=name).first()
    if row is None or row.until < timezone.now() - GRACE - ROLL_EVERY:
        roll(name)
        row = Rollup.objects.filter(name=name).first()
    assert row is not None
    tail = WINDOWS[name](row.until, None)
    return add(row.totals, tail) if row.totals else tail


def prediction_totals() -> dict[str, Any]:
    return totals("predictions")


def webhook_attempt_totals() -> dict[str, int]:
    return totals("webhook_attempts")


def rebuild() -> None:
    """Roll everything up again from the start: after rows were imported with timestamps in
    the past (a restore, a benchmark's seed), which a roll-up never looks back for."""
    with transaction.atomic():
        Rollup.objects.all().delete()
        for name in WINDOWS:
            roll(name)


def recent(name: str, max_age: timedelta, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """A summary at most ``max_age`` old, shared by every process: ``compute()`` runs when the
    stored one is older (e.g. a model page's timing percentiles: once a minute per model, not
    on every view)."""
    now = timezone.now()
    row = Rollup.objects.filter(name=name).first()
    if row is not None and row.until > now - max_age:
        return dict(row.totals)
    summary = compute()
    if not Rollup.objects.filter(name=name).update(until=now, totals=summary):
        # Two processes may get here at once: either row will do.
        Rollup.objects.bulk_create(
            [Rollup(name=name, until=now, totals=summary)], ignore_conflicts=True
        )
    return summary
