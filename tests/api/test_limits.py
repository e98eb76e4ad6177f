"""Rate limits (shared through Redis), problem documents and the generated API docs."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from marketplace.predictions.models import Prediction
from tests.factories import publish

pytestmark = pytest.mark.django_db(transaction=True)


@override_settings(API_RATE_LIMIT=3)
def test_reads_over_the_limit_get_429_with_retry_after(
    api: APIClient, outsider_api: APIClient
) -> None:
    statuses = [api.get("/v1/hardware").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    response = api.get("/v1/account")
    assert response["Content-Type"] == "application/problem+json"
    assert 1 <= int(response["Retry-After"]) <= 60
    assert response.json()["status"] == 429 and "throttled" in response.json()["detail"]
    # Limits are per caller.
    assert outsider_api.get("/v1/hardware").status_code == 200


@override_settings(API_RATE_LIMIT_CREATE=2)
def test_creates_have_their_own_limit(api: APIClient, user: Any) -> None:
    version = publish(user, "hello")
    body = {"version": version.id, "input": {}}
    statuses = [api.post("/v1/predictions", body, format="json").status_code for _ in range(3)]
    assert statuses == [201, 201, 429]
    assert Prediction.objects.count() == 2
    assert api.get("/v1/predictions").status_code == 200  # reads are counted apart


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("get", "/v1/predictions/nope", 404),
        ("get", "/v1/models/nobody/nothing", 404),
        ("post", "/v1/predictions", 400),
        ("post", "/v1/predictions/nope/cancel", 404),
    ],
)
def test_errors_are_problem_documents(api: APIClient, method: str, path: str, status: int) -> None:
    response = getattr(api, method)(path, {}, format="json")
    assert response.status_code == status
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"]


def test_anonymous_is_401_problem() -> None:
    response = APIClient().get("/v1/account")
    assert response.status_code == 401 and response.json()["title"] == "Unauthenticated"


def test_openapi_document_and_docs_page(api: APIClient) -> None:
    schema = APIClient().get("/v1/openapi.json", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200, schema.content[:300]
    document = schema.json()
    assert {"/v1/predictions", "/v1/files", "/v1/models/{owner}/{name}"} <= set(document["paths"])
    page = APIClient().get("/v1/docs")
    assert page.status_code == 200 and b"redoc" in page.content.lower()


def test_openapi_document_generates_without_warnings(tmp_path: Any) -> None:
    from django.core.management import call_command

    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    assert "/v1/predictions/{prediction_id}/cancel" in target.read_text()
