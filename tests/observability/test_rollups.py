"""Rolled-up history for /metrics: the totals equal a recount of the whole table, whatever has
been rolled up and whatever has ended since."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db.models import Count
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from marketplace.metrics import exposition
from marketplace.predictions.models import Prediction
from marketplace.rollups import totals as rollups
from marketplace.rollups.models import Rollup
from tests.factories import publish

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_rollups() -> None:
    # Migrating rolled up an empty history up to then; these tests write history in the past.
    Rollup.objects.all().delete()


def finished(version: Any, count: int, ended_ago: timedelta, status: str = "succeeded") -> None:
    now = timezone.now()
    Prediction.objects.bulk_create(
        Prediction(
            model=version.model,
            version=version,
            account=version.model.owner,
            hardware=version.model.default_hardware,
            status=status,
            created_at=now - ended_ago - timedelta(seconds=3 + i % 5),
            started_at=now - ended_ago - timedelta(seconds=2),
            completed_at=now - ended_ago,
        )
        for i in range(count)
    )


def scraped() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(exposition().decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def recount() -> dict[str, int]:
    return dict(Prediction.objects.values_list("status").annotate(n=Count("pk")))


def test_history_is_rolled_up_and_what_ended_since_is_added(user: Any) -> None:
    version = publish(user, "hello")
    finished(version, 30, timedelta(days=2))
    finished(version, 5, timedelta(days=1), status="failed")
    rollups.roll("predictions")
    row = Rollup.objects.get(name="predictions")
    assert row.totals["status"] == {"succeeded": 30, "failed": 5}
    assert row.until > timezone.now() - rollups.GRACE - timedelta(seconds=5)

    finished(version, 7, timedelta(seconds=1))  # ended after the roll-up: read as the tail
    Prediction.objects.create(
        model=version.model,
        version=version,
        account=user.account,
        hardware=version.model.default_hardware,
        status="processing",
        started_at=timezone.now(),
    )
    metrics = scraped()
    assert metrics[("marketplace_predictions_completed_total", (("status", "succeeded"),))] == 37
    assert metrics[("marketplace_predictions_completed_total", (("status", "failed"),))] == 5
    assert metrics[("marketplace_predictions_active", (("status", "processing"),))] == 1
    assert metrics[("marketplace_predictions_created_total", ())] == sum(recount().values()) == 43
    # Queue waits of all 43 started predictions (3 to 7 s), runs of the 42 that ended (2 s).
    queue_count = ("marketplace_prediction_phase_seconds_count", (("phase", "queue"),))
    run_sum = ("marketplace_prediction_phase_seconds_sum", (("phase", "run"),))
    assert metrics[queue_count] == 43
    assert metrics[run_sum] == pytest.approx(42 * 2.0)
    run_within = ("marketplace_prediction_phase_seconds_bucket", (("le", "2.5"), ("phase", "run")))
    assert metrics[run_within] == 42
    assert Rollup.objects.get(name="predictions").totals == row.totals  # read, not re-rolled


def test_rolling_again_counts_nothing_twice(user: Any) -> None:
    version = publish(user, "hello")
    finished(version, 10, timedelta(hours=3))
    rollups.roll("predictions")
    rollups.roll("predictions")
    later = timezone.now() + timedelta(hours=1)
    finished(version, 4, timedelta(0))  # ended after the first roll-up
    rollups.roll("predictions", now=later)  # moves past the new ones
    rollups.roll("predictions", now=later)
    row = Rollup.objects.get(name="predictions")
    assert row.totals["status"] == {"succeeded": 14}
    assert row.totals["run"]["n"] == 14
    assert rollups.prediction_totals()["status"] == {"succeeded": 14}


def test_rebuild_counts_history_imported_behind_the_rollup(user: Any) -> None:
    rollups.roll("predictions")
    version = publish(user, "hello")
    finished(version, 3, timedelta(days=30))  # older than the roll-up: it would be missed
    assert rollups.prediction_totals()["status"] == {}
    rollups.rebuild()
    assert rollups.prediction_totals()["status"] == {"succeeded": 3}


def test_webhook_attempts_are_rolled_up_too(user: Any) -> None:
    from marketplace.predictions.webhooks import WebhookAttempt, WebhookDelivery

    version = publish(user, "hello")
    finished(version, 1, timedelta(days=1))
    prediction = Prediction.objects.get()
    delivery = WebhookDelivery.objects.create(
        prediction=prediction, event="completed", url="https://example.com/h", payload={}
    )
    old = timezone.now() - timedelta(days=1)
    for status in (200, 500, None):
        WebhookAttempt.objects.create(delivery=delivery, attempted_at=old, response_status=status)
    rollups.roll("webhook_attempts")
    WebhookAttempt.objects.create(delivery=delivery, response_status=204)
    assert rollups.webhook_attempt_totals() == {"success": 2, "failure": 2}


def test_recent_summaries_are_computed_at_most_once_per_max_age() -> None:
    calls: list[int] = []

    def compute() -> dict[str, Any]:
        calls.append(1)
        return {"p50": len(calls)}

    assert rollups.recent("timings:1", timedelta(minutes=1), compute) == {"p50": 1}
    assert rollups.recent("timings:1", timedelta(minutes=1), compute) == {"p50": 1}
    Rollup.objects.filter(name="timings:1").update(until=timezone.now() - timedelta(minutes=2))
    assert rollups.recent("timings:1", timedelta(minutes=1), compute) == {"p50": 2}
    assert len(calls) == 2
