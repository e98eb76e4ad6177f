"""``/v1/deployments`` without hosts: shapes, validation, releases, access and the audit log."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from marketplace.audit.models import AuditEvent
from marketplace.billing import pricing
from marketplace.billing.models import Reservation
from marketplace.catalog.models import Hardware
from marketplace.deployments.models import Deployment, DeploymentRelease
from marketplace.predictions.models import Prediction
from marketplace.scheduling import pools, starts
from tests.factories import FIXTURES, private, publish

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sleepy(user: Any) -> Any:
    return publish(user, FIXTURES / "cog" / "sleepy", name="sleepy")


def create(api: APIClient, **overrides: Any) -> Any:
    body = {
        "name": "my-sleepy",
        "model": "alice/sleepy",
        "version": overrides.pop("version_id", None),
        "hardware": "cpu",
        "min_instances": 0,
        "max_instances": 2,
        **overrides,
    }
    return api.post("/v1/deployments", body, format="json")


def test_create_get_list_answer_replicates_deployment_object(api: APIClient, sleepy: Any) -> None:
    response = create(api, version_id=sleepy.pk)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["owner"] == "alice" and body["name"] == "my-sleepy"
    release = body["current_release"]
    assert release["number"] == 1
    assert release["model"] == "alice/sleepy" and release["version"] == sleepy.pk
    assert release["created_at"].endswith("Z")
    assert release["created_by"] == {
        "type": "user",
        "username": "alice",
        "name": "alice",
        "github_url": None,
        "avatar_url": f"{settings.PUBLIC_URL}/avatars/alice.svg",
    }
    assert release["configuration"] == {"hardware": "cpu", "min_instances": 0, "max_instances": 2}
    assert api.get("/v1/deployments/alice/my-sleepy").json() == body
    listed = api.get("/v1/deployments").json()
    assert listed["results"] == [body] and listed["next"] is None
    assert AuditEvent.objects.filter(action="deployment.create").count() == 1


def test_each_update_is_a_new_release(api: APIClient, user: Any, sleepy: Any) -> None:
    create(api, version_id=sleepy.pk)
    v2 = publish(user, FIXTURES / "cog" / "sleepy_v2", name="sleepy")
    response = api.patch(
        "/v1/deployments/alice/my-sleepy", {"version": v2.pk, "max_instances": 5}, format="json"
    )
    assert response.status_code == 200, response.content
    release = response.json()["current_release"]
    assert release["number"] == 2 and release["version"] == v2.pk
    assert release["configuration"]["max_instances"] == 5
    release = api.patch(
        "/v1/deployments/alice/my-sleepy", {"min_instances": 1}, format="json"
    ).json()["current_release"]
    assert release["number"] == 3 and release["configuration"]["min_instances"] == 1
    assert list(DeploymentRelease.objects.values_list("number", flat=True)) == [3, 2, 1]
    assert AuditEvent.objects.filter(action="deployment.update").count() == 2


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"name": "Bad Name!"}, "name"),
        ({"model": "alice/nothing"}, "model"),
        ({"version_id": "f" * 64}, "version"),
        ({"hardware": "gpu-imaginary"}, "hardware"),
        ({"min_instances": 3, "max_instances": 2}, "min_instances"),
        ({"max_instances": 100_000}, "max_instances"),
        ({"max_instances": -1}, "max_instances"),
        ({"max_instances": "lots"}, "max_instances"),
        ({"min_instances": -1}, "min_instances"),
    ],
)
def test_bad_input_is_422_naming_the_field_and_writes_nothing(
    api: APIClient, sleepy: Any, overrides: dict[str, Any], field: str
) -> None:
    overrides.setdefault("version_id", sleepy.pk)
    response = create(api, **overrides)
    assert response.status_code == 422, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert field in [f["field"] for f in response.json()["invalid_fields"]]
    assert not Deployment.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="deployment.").exists()


def test_a_duplicate_name_and_bad_updates_are_refused(api: APIClient, sleepy: Any) -> None:
    create(api, version_id=sleepy.pk)
    assert create(api, version_id=sleepy.pk).status_code == 422
    for body, field in (
        ({"max_instances": -1}, "max_instances"),
        ({"min_instances": 1, "max_instances": 0}, "min_instances"),
        ({"owner": "mallory"}, "owner"),
        ({}, "body"),
        ({"hardware": "nope"}, "hardware"),
    ):
        response = api.patch("/v1/deployments/alice/my-sleepy", body, format="json")
        assert response.status_code == 422, body
        assert [f["field"] for f in response.json()["invalid_fields"]] == [field]
    assert DeploymentRelease.objects.count() == 1


def test_outsiders_get_404_for_everything(
    api: APIClient, outsider_api: APIClient, sleepy: Any
) -> None:
    create(api, version_id=sleepy.pk)
    base = "/v1/deployments/alice/my-sleepy"
    assert outsider_api.get(base).status_code == 404
    assert outsider_api.patch(base, {"max_instances": 1}, format="json").status_code == 404
    assert outsider_api.delete(base).status_code == 404
    assert outsider_api.post(f"{base}/predictions", {"input": {}}, format="json").status_code == 404
    assert outsider_api.post(f"{base}/prewarm", {}, format="json").status_code == 404
    assert outsider_api.get("/v1/deployments").json()["results"] == []
    assert Prediction.objects.count() == 0
    assert APIClient().get(base).status_code == 401


def test_a_private_model_cannot_be_deployed_by_others(outsider_api: APIClient, sleepy: Any) -> None:
    private(sleepy)
    response = outsider_api.post(
        "/v1/deployments",
        {"name": "x", "model": "alice/sleepy", "version": sleepy.pk, "hardware": "cpu",
         "min_instances": 0, "max_instances": 1},
        format="json",
    )  # fmt: skip
    assert response.status_code == 422
    assert [f["field"] for f in response.json()["invalid_fields"]] == ["model"]


def test_deployment_predictions_queue_on_the_deployments_own_pool(
    api: APIClient, outsider_api: APIClient, sleepy: Any
) -> None:
    Hardware.objects.create(sku="cpu-large", name="CPU large", price_per_second="0.0002")
    create(api, version_id=sleepy.pk, hardware="cpu-large")
    response = api.post(
        "/v1/deployments/alice/my-sleepy/predictions",
        {"input": {"seconds": 0.1}},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["version"] == sleepy.pk and body["hardware"] == "cpu-large"
    assert body["deployment"] == "alice/my-sleepy"
    assert api.get(f"/v1/predictions/{body['id']}").json()["deployment"] == "alice/my-sleepy"
    # No host has cpu-large: nothing can take it yet, and it says so.
    assert body["queue"]["position"] == 1 and body["queue"]["phase"] == "waiting_for_capacity"
    deployment = Deployment.objects.get()
    prediction = Prediction.objects.get(pk=body["id"])
    assert prediction.deployment == deployment and prediction.account.username == "alice"
    pool = pools.deployment_pool(deployment.pk)
    assert pools.queued_ids(pool) == [body["id"]]
    assert pools.length(pools.version_pool(sleepy.pk)) == 0
    assert starts.hardware_queue("cpu-large").count == 1
    # Billed to the caller, reserved at the deployment's hardware price (not the model's default).
    hold = Reservation.objects.get(prediction_id=body["id"])
    assert hold.amount == pricing.worst_case(sleepy, Hardware.objects.get(sku="cpu-large"))
    assert hold.amount > pricing.worst_case(sleepy, sleepy.model.default_hardware)
    # Bad input: 422 naming the field, nothing queued.
    bad = api.post(
        "/v1/deployments/alice/my-sleepy/predictions",
        {"input": {"seconds": "long"}},
        format="json",
    )
    assert bad.status_code == 422 and bad.json()["invalid_fields"][0]["field"] == "input.seconds"
    assert pools.length(pool) == 1 and Prediction.objects.count() == 1


def test_delete_answers_204_and_cancels_what_was_queued(api: APIClient, sleepy: Any) -> None:
    create(api, version_id=sleepy.pk)
    queued = api.post(
        "/v1/deployments/alice/my-sleepy/predictions", {"input": {}}, format="json"
    ).json()
    pool = pools.deployment_pool(Deployment.objects.get().pk)
    assert api.delete("/v1/deployments/alice/my-sleepy").status_code == 204
    assert api.get("/v1/deployments/alice/my-sleepy").status_code == 404
    prediction = Prediction.objects.get(pk=queued["id"])
    assert prediction.status == "canceled" and prediction.started_at is None
    assert pools.length(pool) == 0
    assert AuditEvent.objects.filter(action="deployment.delete").count() == 1


def test_max_instances_0_takes_the_deployment_offline(api: APIClient, sleepy: Any) -> None:
    create(api, version_id=sleepy.pk)
    deployment = Deployment.objects.get()
    queued = api.post(
        "/v1/deployments/alice/my-sleepy/predictions", {"input": {}}, format="json"
    ).json()
    updated = api.patch("/v1/deployments/alice/my-sleepy", {"max_instances": 0}, format="json")
    assert updated.status_code == 200, updated.content
    release = updated.json()["current_release"]
    assert release["number"] == 2 and release["configuration"]["max_instances"] == 0
    # What waited ends canceled, never started nor billed; new predictions are refused.
    prediction = Prediction.objects.get(pk=queued["id"])
    assert prediction.status == "canceled" and prediction.started_at is None
    assert pools.length(pools.deployment_pool(deployment.pk)) == 0
    refused = api.post("/v1/deployments/alice/my-sleepy/predictions", {"input": {}}, format="json")
    assert refused.status_code == 409 and "offline" in refused.json()["detail"]
    assert Prediction.objects.count() == 1
    # Back online with a positive maximum.
    assert (
        api.patch(
            "/v1/deployments/alice/my-sleepy", {"max_instances": 1}, format="json"
        ).status_code
        == 200
    )
    again = api.post("/v1/deployments/alice/my-sleepy/predictions", {"input": {}}, format="json")
    assert again.status_code == 201


def test_prewarm_asks_for_instances_up_to_the_maximum(api: APIClient, sleepy: Any) -> None:
    create(api, version_id=sleepy.pk, max_instances=3)
    response = api.post("/v1/deployments/alice/my-sleepy/prewarm", {"instances": 5}, format="json")
    assert response.status_code == 202 and response.json() == {"requested": 3, "instances": 3}
    assert starts.hardware_queue("cpu").count == 3
    again = api.post("/v1/deployments/alice/my-sleepy/prewarm", {"instances": 2}, format="json")
    assert again.json() == {"requested": 0, "instances": 3}
    bad = api.post("/v1/deployments/alice/my-sleepy/prewarm", {"instances": 0}, format="json")
    assert bad.status_code == 422 and bad.json()["invalid_fields"][0]["field"] == "instances"


def test_model_prewarm_is_for_its_owners(
    api: APIClient, outsider_api: APIClient, sleepy: Any
) -> None:
    assert (
        outsider_api.post("/v1/models/alice/sleepy/prewarm", {}, format="json").status_code == 403
    )
    response = api.post("/v1/models/alice/sleepy/prewarm", {"instances": 1}, format="json")
    assert response.status_code == 202 and response.json() == {"requested": 1, "instances": 1}
    private(sleepy)
    assert (
        outsider_api.post("/v1/models/alice/sleepy/prewarm", {}, format="json").status_code == 404
    )
