"""/v1/predictions beyond the basics: listing pages, creates by model, Cancel-After, owners only."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from marketplace.predictions.models import Prediction
from marketplace.scheduling import pools
from tests.conftest import wait_for
from tests.factories import private, publish

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def hello(user: Any) -> Any:
    return publish(user, "hello")


def make_rows(version: Any, count: int, **fields: Any) -> list[Prediction]:
    now = timezone.now()
    return Prediction.objects.bulk_create(
        Prediction(
            model=version.model,
            version=version,
            account=version.model.owner,
            hardware=version.model.default_hardware,
            created_at=now - timedelta(seconds=i),
            **fields,
        )
        for i in range(count)
    )


def test_list_pages_newest_first_with_absolute_cursor_urls(api: APIClient, hello: Any) -> None:
    rows = make_rows(hello, 130)
    first = api.get("/v1/predictions").json()
    assert [p["id"] for p in first["results"]] == [r.id for r in rows[:100]]
    assert first["previous"] is None and first["next"].startswith("http://testserver/v1/")
    second = api.get(first["next"]).json()
    assert [p["id"] for p in second["results"]] == [r.id for r in rows[100:]]
    assert second["next"] is None and second["previous"].startswith("http://")


def test_list_filters_by_creation_time_and_source(api: APIClient, hello: Any) -> None:
    rows = make_rows(hello, 5)
    Prediction.objects.filter(pk=rows[0].pk).update(source="web")
    cutoff = rows[2].created_at.isoformat()
    after = api.get("/v1/predictions", {"created_after": cutoff}).json()["results"]
    assert [p["id"] for p in after] == [r.id for r in rows[:3]]
    before = api.get("/v1/predictions", {"created_before": cutoff}).json()["results"]
    assert [p["id"] for p in before] == [r.id for r in rows[3:]]
    web = api.get("/v1/predictions", {"source": "web"}).json()["results"]
    assert [p["id"] for p in web] == [rows[0].id]
    bad = api.get("/v1/predictions", {"created_after": "yesterday"})
    assert bad.status_code == 400 and "created_after" in bad.json()["detail"]


def test_outsiders_never_see_other_peoples_predictions(outsider_api: APIClient, hello: Any) -> None:
    (row,) = make_rows(hello, 1)
    assert outsider_api.get("/v1/predictions").json()["results"] == []
    assert outsider_api.get(f"/v1/predictions/{row.id}").status_code == 404
    assert outsider_api.post(f"/v1/predictions/{row.id}/cancel").status_code == 404
    assert outsider_api.get(f"/v1/predictions/{row.id}/webhooks").status_code == 404


def test_create_by_model_runs_the_latest_visible_version(api: APIClient, user: Any) -> None:
    version = publish(user, "hello")
    response = api.post(
        "/v1/models/alice/hello/predictions", {"input": {"text": "m"}}, format="json"
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["version"] == version.id and body["model"] == "alice/hello"
    assert response["Location"] == body["urls"]["get"]
    assert body["hardware"] == "cpu" and body["cost"] is None


def test_create_by_private_model_of_someone_else_is_404(outsider_api: APIClient, user: Any) -> None:
    private(publish(user, "hello"))
    response = outsider_api.post("/v1/models/alice/hello/predictions", {"input": {}}, format="json")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    assert Prediction.objects.count() == 0


def test_cancel_after_sets_a_deadline(api: APIClient, hello: Any) -> None:
    response = api.post(
        "/v1/predictions",
        {"version": hello.id, "input": {}},
        format="json",
        headers={"Cancel-After": "1m30s"},
    )
    body = response.json()
    prediction = Prediction.objects.get(pk=body["id"])
    assert prediction.deadline is not None
    delta = (prediction.deadline - prediction.created_at).total_seconds()
    assert 89 <= delta <= 91 and body["deadline"].endswith("Z")


@pytest.mark.parametrize("value", ["2s", "soon", "1x"])
def test_bad_cancel_after_is_400_and_stores_nothing(api: APIClient, hello: Any, value: str) -> None:
    response = api.post(
        "/v1/predictions",
        {"version": hello.id, "input": {}},
        format="json",
        headers={"Cancel-After": value},
    )
    assert response.status_code == 400 and "Cancel-After" in response.json()["detail"]
    assert Prediction.objects.count() == 0 and pools.length(pools.version_pool(hello.id)) == 0


def test_a_prediction_that_never_starts_is_canceled_at_its_deadline(
    api: APIClient, hello: Any, start_worker: Any
) -> None:
    start_worker("--with-scheduler", "default")
    body = api.post(
        "/v1/predictions",
        {"version": hello.id, "input": {}},
        format="json",
        headers={"Cancel-After": "5s"},
    ).json()
    prediction = wait_for(
        lambda: Prediction.objects.filter(pk=body["id"], status="canceled").first(),
        timeout=20,
        message="the deadline to cancel the queued prediction",
    )
    # Never started, so never billed: no start time, no predict_time, off the queue.
    assert prediction.started_at is None and "predict_time" not in prediction.metrics
    assert pools.length(pools.version_pool(hello.id)) == 0


def test_prefer_wait_returns_starting_when_the_window_closes(api: APIClient, hello: Any) -> None:
    response = api.post(
        "/v1/predictions",
        {"version": hello.id, "input": {}},
        format="json",
        headers={"Prefer": "wait=1"},
    )
    # No agent runs here, so the window closes first.
    assert response.status_code == 201 and response["Preference-Applied"] == "wait=1"
    assert response.json()["status"] == "starting"
