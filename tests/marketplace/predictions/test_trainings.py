"""The /v1 trainings API without workers: who may create, see and cancel a training, where its
version may go, what it costs and what retention keeps. Runs are driven through the real claim
and finish services, the way a runner does (``tests/billing/helpers.run``)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from marketplace import storage
from marketplace.accounts.models import ApiToken
from marketplace.billing.models import BillingAccount, UsageEntry
from marketplace.catalog.models import Model, Version
from marketplace.files.models import StoredFile
from marketplace.predictions.models import Prediction
from marketplace.predictions.retention import remove_expired_data
from marketplace.scheduling import pools
from tests.billing.helpers import run
from tests.factories import UserFactory, private, publish

pytestmark = pytest.mark.django_db(transaction=True)

TRAINABLE = Path(__file__).resolve().parents[2] / "fixtures" / "cog" / "trainable"


@pytest.fixture
def base(user: Any) -> Version:
    return publish(user, TRAINABLE, name="trainable")


def train(api: APIClient, version: Version, destination: Any, input: Any = None) -> Any:
    owner, name = version.model.full_name.split("/")
    return api.post(
        f"/v1/models/{owner}/{name}/versions/{version.pk}/trainings",
        {"destination": destination, "input": {"phrase": "hi"} if input is None else input},
        format="json",
    )


def client_of(user: Any, **token: Any) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {ApiToken.create_for(user, **token)[1]}")
    return client


def stored_weights(training: Prediction, text: str = "trained") -> str:
    """What the agent does with the trainer's file: store it as the training's output."""
    name = default_storage.save(f"outputs/{training.pk}/w/weights.txt", ContentFile(text))
    StoredFile.record_output(name, training.pk)
    return storage.reference(name)


def test_a_training_is_queued_on_its_own_pool_and_creates_a_private_destination(
    api: APIClient, base: Version, settings: Any
) -> None:
    settings.METRICS_TOKEN = "scrape"
    response = train(api, base, "alice/tuned")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "starting" and body["model"] == "alice/trainable"
    assert body["version"] == base.pk and body["destination"] == "alice/tuned"
    assert body["urls"]["get"].endswith(f"/v1/trainings/{body['id']}")
    assert body["output"] is None and body["input"] == {"phrase": "hi"}
    training = Prediction.objects.get(pk=body["id"])
    assert training.kind == "training" and training.destination is not None
    assert training.destination.visibility == Model.Visibility.PRIVATE
    # Train-mode instances serve it, not the version's predictions pool.
    assert pools.queued_ids(pools.training_pool(base.pk)) == [training.pk]
    assert pools.queued_ids(pools.version_pool(base.pk)) == []
    metrics = Client().get("/metrics", headers={"Authorization": "Bearer scrape"})
    assert (
        f'marketplace_training_queue_depth{{version="{base.pk}"}} 1.0' in metrics.content.decode()
    )


def test_bad_training_input_is_refused_naming_the_field(api: APIClient, base: Version) -> None:
    response = train(api, base, "alice/tuned", {"phrase": "x", "seconds": 500})
    assert response.status_code == 422
    assert [f["field"] for f in response.json()["invalid_fields"]] == ["input.seconds"]
    # The predict input is not the training input.
    response = train(api, base, "alice/tuned", {"name": "x"})
    assert response.status_code == 422
    assert not Prediction.objects.exists() and not Model.objects.filter(name="tuned").exists()


def test_a_model_without_a_trainer_cannot_be_trained(api: APIClient, user: Any) -> None:
    hello = publish(user, "hello")
    response = train(api, hello, "alice/tuned", {"text": "x"})
    assert response.status_code == 422 and "cannot be trained" in response.json()["detail"]
    assert not Prediction.objects.exists()


def test_a_destination_the_caller_cannot_write_is_refused_naming_it(
    api: APIClient, base: Version, outsider: Any
) -> None:
    for name, visibility in (("theirs", "public"), ("secret", "private")):
        Model.objects.create(
            owner=outsider.account,
            name=name,
            visibility=visibility,
            default_hardware=base.model.default_hardware,
        )
    models = Model.objects.count()
    for destination, status in (
        ("mallory/theirs", 403),  # their public model: seen, not writable
        ("mallory/secret", 404),  # their private model: as if absent
        ("mallory/new", 403),  # a new model under an account the caller cannot write
        ("nobody/new", 404),
        ("no-slash", 422),
        ("", 400),
    ):
        response = train(api, base, destination)
        assert response.status_code == status, (destination, response.json())
        assert response["Content-Type"] == "application/problem+json"
        fields = {f["field"] for f in response.json().get("invalid_fields", [])}
        assert "destination" in fields, (destination, response.json())
    assert not Prediction.objects.exists() and Model.objects.count() == models


def test_outsiders_cannot_train_a_private_model_or_see_or_cancel_a_training(
    api: APIClient, outsider_api: APIClient, base: Version, outsider: Any
) -> None:
    training_id = train(api, base, "alice/tuned").json()["id"]
    assert outsider_api.get(f"/v1/trainings/{training_id}").status_code == 404
    assert outsider_api.post(f"/v1/trainings/{training_id}/cancel").status_code == 404
    assert outsider_api.get("/v1/trainings").json()["results"] == []
    assert Prediction.objects.get(pk=training_id).status == "starting"
    private(base)
    assert train(outsider_api, base, "mallory/tuned").status_code == 404
    assert Prediction.objects.count() == 1


def test_read_only_tokens_cannot_create_or_cancel_trainings(
    api: APIClient, user: Any, base: Version
) -> None:
    training_id = train(api, base, "alice/tuned").json()["id"]
    reader = client_of(user, permission="read")
    assert train(reader, base, "alice/other").status_code == 403
    assert reader.post(f"/v1/trainings/{training_id}/cancel").status_code == 403
    assert reader.get(f"/v1/trainings/{training_id}").status_code == 200
    assert Prediction.objects.count() == 1 and not Model.objects.filter(name="other").exists()


def test_cancel_of_a_queued_training_ends_it_unbilled(api: APIClient, base: Version) -> None:
    training_id = train(api, base, "alice/tuned").json()["id"]
    body = api.post(f"/v1/trainings/{training_id}/cancel").json()
    assert body["status"] == "canceled" and body["cost"] == "0.000000"
    assert pools.queued_ids(pools.training_pool(base.pk)) == []
    assert not UsageEntry.objects.exists()


def test_a_cap_refuses_a_training_before_it_starts(
    api: APIClient, user: Any, base: Version
) -> None:
    BillingAccount.objects.update_or_create(
        account=user.account, defaults={"monthly_cap": Decimal("0.01")}
    )
    response = train(api, base, "alice/tuned")
    assert response.status_code == 402, response.json()
    assert "training could cost up to" in response.json()["detail"]
    assert not Prediction.objects.exists() and not Model.objects.filter(name="tuned").exists()


def test_a_finished_training_makes_a_version_billed_as_a_training(
    api: APIClient, base: Version
) -> None:
    training = Prediction.objects.get(pk=train(api, base, "alice/tuned").json()["id"])
    run(training, 2.5, output={"weights": stored_weights(training)})
    version = Version.objects.get(training=training)
    assert version.model.full_name == "alice/tuned" and version.trained_from == base
    assert version.source_path == base.source_path and version.schema == base.schema
    assert training.output["version"] == f"alice/tuned:{version.pk}"
    body = api.get(f"/v1/trainings/{training.pk}").json()
    assert body["output"]["version"] == training.output["version"]
    assert "signature=" in body["output"]["weights"]
    entry = UsageEntry.objects.get(prediction=training)
    price = base.model.default_hardware.price_per_second
    assert entry.kind == "training" and entry.seconds == Decimal("2.5")
    assert entry.amount == (price * Decimal("2.5")).quantize(Decimal("0.000001"))
    assert Decimal(body["cost"]) == entry.amount
    # The trained version answers like any version of its model.
    listed = api.get("/v1/models/alice/tuned/versions").json()["results"]
    assert [v["id"] for v in listed] == [version.pk]


def test_a_training_without_weights_fails(api: APIClient, base: Version) -> None:
    training = Prediction.objects.get(pk=train(api, base, "alice/tuned").json()["id"])
    training = run(training, 1, output={"weights": "https://elsewhere.example/w.bin"})
    assert training.status == "failed" and "weights" in (training.error or "")
    assert not Version.objects.filter(training=training).exists()


def test_retention_never_removes_the_weights_of_a_version(api: APIClient, base: Version) -> None:
    training = Prediction.objects.get(pk=train(api, base, "alice/tuned").json()["id"])
    run(training, 1, output={"weights": stored_weights(training, "keep me")})
    version = Version.objects.get(training=training)
    Prediction.objects.filter(pk=training.pk).update(
        completed_at=timezone.now() - timedelta(days=400)
    )
    assert remove_expired_data() == 1
    training.refresh_from_db()
    assert training.data_removed and training.output is None
    assert StoredFile.objects.get(name=version.weights).kind == StoredFile.Kind.WEIGHTS
    with storage.open_stream(version.weights) as fh:
        assert fh.read() == b"keep me"


def test_an_organisation_token_trains_into_the_organisation_not_elsewhere(
    base: Version,
) -> None:
    from marketplace.accounts.orgs import organization_create

    bob = UserFactory(username="bob")
    org = organization_create(bob, "acme")
    # A personal token acts for bob alone (as on Replicate): the organisation is out of reach.
    assert train(client_of(bob), base, "acme/tuned").status_code == 403
    org_api = client_of(bob, account=org)
    response = train(org_api, base, "acme/tuned")
    assert response.status_code == 201, response.json()
    training = Prediction.objects.get(pk=response.json()["id"])
    assert training.account == org and training.destination.owner == org
    assert train(org_api, base, "bob/tuned").status_code == 403


def test_the_reconciler_queues_a_lost_training_again_on_its_training_pool(
    api: APIClient, base: Version
) -> None:
    from marketplace.predictions.reconcile import grace, reconcile

    training_id = train(api, base, "alice/tuned").json()["id"]
    pools.remove(pools.training_pool(base.pk), training_id)  # as if Redis lost it
    report = reconcile(now=timezone.now() + grace() + timedelta(seconds=1))
    assert report.requeued == [training_id]
    assert pools.queued_ids(pools.training_pool(base.pk)) == [training_id]
    assert pools.queued_ids(pools.version_pool(base.pk)) == []


def test_the_prediction_page_and_history_show_a_finished_training(
    api: APIClient, user: Any, base: Version
) -> None:
    training = Prediction.objects.get(pk=train(api, base, "alice/tuned").json()["id"])
    run(training, 1, output={"weights": stored_weights(training)})
    web = Client()
    web.force_login(user)
    assert web.get(f"/p/{training.pk}").status_code == 200
    assert web.get(f"/p/{training.pk}/json").json()["output"]["version"].startswith("alice/tuned:")
    assert training.pk in web.get("/account/predictions").content.decode()
    assert web.get("/alice/tuned").status_code == 200
