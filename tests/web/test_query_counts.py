"""Pages cost a constant number of queries however many models there are (no N+1)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from marketplace.catalog.models import Collection, Model, Version
from marketplace.predictions.models import Prediction
from marketplace.predictions.services import Outcome, prediction_create, prediction_finish
from marketplace.predictions.webhooks import WebhookAttempt, WebhookDelivery
from marketplace.rollups.models import Rollup
from tests.factories import UserFactory, cpu, publish

pytestmark = pytest.mark.django_db

PAGES = [
    "/",
    "/search?q=model",
    "/search?pricing=second&hardware=cpu",
    "/collections/all",
    "/alice",
    "/alice/hello",
    "/alice/hello/api",
    "/alice/hello/versions",
    "/alice/hello/examples",
    "/account/predictions",
]


def add_models(count: int, start: int, template: Version) -> None:
    owners = [UserFactory(username=f"owner{i}").account for i in range(start, start + 3)]
    models = Model.objects.bulk_create(
        Model(
            owner=owners[i % len(owners)],
            name=f"model-{start + i}",
            description="a model",
            default_hardware=cpu(),
            featured=i % 7 == 0,
            run_count=i,
        )
        for i in range(count)
    )
    Version.objects.bulk_create(
        Version(
            id=hashlib.sha256(f"{m.pk}".encode()).hexdigest(),
            model=m,
            openapi_schema=template.openapi_schema,
            cog_version="0.23.1",
            source_path=template.source_path,
            unit_price="0.01" if i % 2 else None,
        )
        for i, m in enumerate(models)
    )
    Collection.objects.get_or_create(slug="all", defaults={"name": "All"})[0].members.add(*models)


def count_queries(client: Client) -> dict[str, int]:
    cache.clear()  # explore's top tags are remembered for a minute
    # Model pages compute their timings once a minute: count the computing view each time.
    Rollup.objects.filter(name__startswith="timings:").delete()
    counts = {}
    for page in PAGES:
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(page)
        assert response.status_code == 200, page
        counts[page] = len(ctx.captured_queries)
    return counts


def test_pages_make_the_same_queries_with_30_or_500_models(
    user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    client = Client()
    client.force_login(user)
    hello = publish(user, "hello", "hello")
    publish(user, "slow-progress", "hello")  # a second version: the versions tab diffs them
    for i in range(3):
        p = prediction_create(
            version=hello, input={"text": str(i)}, account=user.account, created_by=user
        )
        prediction_finish(p.pk, Outcome("succeeded", output=f"hello {i}"))
    Prediction.objects.update(is_example=True)
    # Enough for every explore section to have cards (sections do not repeat each other).
    add_models(30, 0, hello)
    few = count_queries(client)
    add_models(470, 100, hello)
    assert Model.objects.count() == 501
    many = count_queries(client)
    assert many == few
    # And the numbers stay small: session, user and the page's own few queries (13 for a model
    # page that recomputes its timings, once a minute; 9 when it reads them).
    assert max(many.values()) <= 13, many


def test_prediction_page_queries_do_not_grow_with_webhook_deliveries(user: Any) -> None:
    client = Client()
    client.force_login(user)
    hello = publish(user, "hello", "hello")
    prediction = prediction_create(
        version=hello, input={"text": "x"}, account=user.account, created_by=user
    )
    prediction_finish(prediction.pk, Outcome("succeeded", output="hello x"))

    def add_deliveries(count: int) -> None:
        deliveries = WebhookDelivery.objects.bulk_create(
            WebhookDelivery(
                prediction=prediction,
                event="completed",
                url="https://example.com/hook",
                payload={},
                status=WebhookDelivery.Status.FAILED,
            )
            for _ in range(count)
        )
        WebhookAttempt.objects.bulk_create(
            WebhookAttempt(delivery=d, response_status=500) for d in deliveries for _ in range(3)
        )

    def page_queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(f"/p/{prediction.pk}")
        assert response.status_code == 200
        return len(ctx.captured_queries)

    add_deliveries(1)
    few = page_queries()
    add_deliveries(20)
    assert page_queries() == few
    assert few <= 12
