"""The minimal /v1 predictions API without workers: what is stored and queued, who sees it."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from marketplace.catalog import runs
from marketplace.catalog.schema import REDACTED
from marketplace.predictions.models import Prediction
from marketplace.predictions.secrets import unseal
from marketplace.scheduling import pools, starts
from tests.factories import private, publish

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def hello(user):  # type: ignore[no-untyped-def]
    return publish(user, "hello")


def create(api: APIClient, version: str, input: object, **headers: str):  # type: ignore[no-untyped-def]
    return api.post(
        "/v1/predictions", {"version": version, "input": input}, format="json", headers=headers
    )


def test_create_stores_the_prediction_and_queues_it(api, hello) -> None:  # type: ignore[no-untyped-def]
    response = create(api, hello.pk, {"text": "you"})
    assert response.status_code == 201
    body = response.json()
    assert response["Location"] == body["urls"]["get"]
    assert (
        body["status"] == "starting"
        and body["model"] == "alice/hello"
        and body["version"] == hello.pk
    )
    assert body["input"] == {"text": "you"} and body["error"] is None and body["logs"] == ""
    assert body["source"] == "api" and body["data_removed"] is False
    assert "stream" not in body["urls"]  # not an iterator model
    assert len(body["id"]) == 26
    assert Prediction.objects.get(pk=body["id"]).status == Prediction.Status.STARTING
    assert pools.queued_ids(pools.version_pool(hello.pk)) == [body["id"]]
    # No instance serves the version yet, so one was requested from the hardware queue.
    assert starts.hardware_queue("cpu").count == 1
    # The run is counted with the queueing, and added to the model's count by a flush.
    assert runs.flush() == 1
    hello.model.refresh_from_db()
    assert hello.model.run_count == 1


def test_a_second_create_does_not_request_a_second_instance(api, hello) -> None:  # type: ignore[no-untyped-def]
    create(api, hello.pk, {})
    create(api, hello.pk, {})
    assert pools.length(pools.version_pool(hello.pk)) == 2
    assert starts.hardware_queue("cpu").count == 1


@pytest.mark.parametrize("ref", ["{owner}/hello", "{owner}/hello:{id}"])
def test_version_can_be_given_as_model_reference(api, hello, ref: str) -> None:  # type: ignore[no-untyped-def]
    response = create(api, ref.format(owner="alice", id=hello.pk), {})
    assert response.status_code == 201
    assert response.json()["version"] == hello.pk


def test_invalid_input_is_422_naming_each_field_and_stores_nothing(api, user) -> None:  # type: ignore[no-untyped-def]
    version = publish(user, "input-types")
    response = create(api, version.pk, {"count": 50, "color": "pink", "bogus": True})
    assert response.status_code == 422
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["title"] == "Input validation failed" and body["status"] == 422
    assert {f["field"] for f in body["invalid_fields"]} == {
        "input.count",
        "input.color",
        "input.bogus",
    }
    assert "count" in body["detail"] and "color" in body["detail"]
    assert Prediction.objects.count() == 0
    assert pools.length(pools.version_pool(version.pk)) == 0
    assert starts.hardware_queue("cpu").count == 0
    assert runs.flush() == 0
    version.model.refresh_from_db()
    assert version.model.run_count == 0


def test_missing_input_is_a_clear_error(api, hello) -> None:  # type: ignore[no-untyped-def]
    response = api.post("/v1/predictions", {"version": hello.pk}, format="json")
    assert response.status_code == 400
    assert response.json()["invalid_fields"][0]["field"] == "input"
    assert Prediction.objects.count() == 0


def test_unknown_version_is_422(api, hello) -> None:  # type: ignore[no-untyped-def]
    response = create(api, "f" * 64, {})
    assert response.status_code == 422
    assert response.json()["title"] == "Invalid version or not permitted"


def test_someone_elses_private_model_looks_like_it_does_not_exist(outsider_api, hello) -> None:  # type: ignore[no-untyped-def]
    private(hello)
    assert create(outsider_api, hello.pk, {}).status_code == 422
    assert create(outsider_api, "alice/hello", {}).status_code == 422
    assert Prediction.objects.count() == 0


def test_public_models_run_for_other_accounts_on_their_account(
    outsider_api, outsider, hello
) -> None:  # type: ignore[no-untyped-def]
    response = create(outsider_api, hello.pk, {})
    assert response.status_code == 201
    assert Prediction.objects.get(pk=response.json()["id"]).account == outsider.account


def test_secret_inputs_are_never_stored_in_clear(api, user) -> None:  # type: ignore[no-untyped-def]
    version = publish(user, "input-types")
    response = create(api, version.pk, {"api_token": "sk-very-secret"})
    assert response.status_code == 201
    assert response.json()["input"]["api_token"] == REDACTED
    prediction = Prediction.objects.get(pk=response.json()["id"])
    assert prediction.input["api_token"] == REDACTED
    sealed = pools.queued_secrets(pools.version_pool(version.pk), prediction.pk)
    assert sealed is not None
    assert "sk-very-secret" not in sealed
    assert unseal(sealed) == {"api_token": "sk-very-secret"}


def test_iterator_models_get_a_stream_url(api, user) -> None:  # type: ignore[no-untyped-def]
    version = publish(user, "text-stream")
    body = create(api, version.pk, {}).json()
    assert body["urls"]["stream"].startswith("http://")
    assert Prediction.objects.get(pk=body["id"]).stream_token in body["urls"]["stream"]


def test_anonymous_requests_are_401_problems(hello) -> None:  # type: ignore[no-untyped-def]
    anonymous = APIClient()
    response = create(anonymous, hello.pk, {})
    assert response.status_code == 401
    assert response.json()["detail"] == "You did not pass a valid authentication token"
    bad = APIClient()
    bad.credentials(HTTP_AUTHORIZATION="Bearer mkt_not-a-real-token")
    assert create(bad, hello.pk, {}).status_code == 401
    assert Prediction.objects.count() == 0


def test_token_keyword_is_accepted_too(user, hello) -> None:  # type: ignore[no-untyped-def]
    from tests.factories import token_for

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(user)}")
    assert create(client, hello.pk, {}).status_code == 201


def test_owner_reads_the_prediction_and_outsiders_get_404(api, outsider_api, hello) -> None:  # type: ignore[no-untyped-def]
    prediction_id = create(api, hello.pk, {}).json()["id"]
    assert api.get(f"/v1/predictions/{prediction_id}").json()["id"] == prediction_id
    response = outsider_api.get(f"/v1/predictions/{prediction_id}")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    assert APIClient().get(f"/v1/predictions/{prediction_id}").status_code == 401


def test_canceling_a_queued_prediction_ends_it_and_takes_it_off_the_queue(
    api, outsider_api, hello
) -> None:  # type: ignore[no-untyped-def]
    prediction_id = create(api, hello.pk, {}).json()["id"]
    assert outsider_api.post(f"/v1/predictions/{prediction_id}/cancel").status_code == 404
    body = api.post(f"/v1/predictions/{prediction_id}/cancel").json()
    assert body["status"] == "canceled" and body["completed_at"]
    assert pools.length(pools.version_pool(hello.pk)) == 0
    # Terminal states are final: canceling again changes nothing.
    again = api.post(f"/v1/predictions/{prediction_id}/cancel").json()
    assert again["completed_at"] == body["completed_at"]


@pytest.mark.parametrize("prefer", ["wait=0", "wait=61", "wait=abc"])
def test_malformed_prefer_wait_is_refused_before_anything_is_stored(
    api, hello, prefer: str
) -> None:  # type: ignore[no-untyped-def]
    response = create(api, hello.pk, {}, Prefer=prefer)
    assert response.status_code == 400
    assert "Prefer" in response.json()["detail"]
    assert Prediction.objects.count() == 0
