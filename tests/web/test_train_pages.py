"""The Train tab, training pages, history and trained versions, through Django's client: who
sees and may use what (outsiders 404, CSRF), what a refused training leaves behind (nothing)."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from marketplace.catalog.models import Model, Version
from marketplace.files.models import StoredFile
from marketplace.predictions.models import Prediction
from marketplace.predictions.policy import Outcome
from marketplace.predictions.services import prediction_create, prediction_finish
from tests.factories import private, publish

SAMPLE = b"The comet rose over the observatory. The telescope found the nebula at midnight. " * 3


@pytest.fixture
def trainable(user: Any) -> Version:
    return publish(user, "text-train", "text-train")


def post_training(client: Client, model: str, **extra: Any) -> Any:
    data = {
        "text_file": SimpleUploadedFile("astronomer.txt", SAMPLE, content_type="text/plain"),
        "order": "3",
        "destination": "",
        "new_owner": "alice",
        "new_name": "astro",
        **extra,
    }
    return client.post(f"/{model}/train", data)


def test_train_tab_and_form_come_from_the_training_schema(
    alice_client: Client, trainable: Version, user: Any, bob: Any
) -> None:
    publish(user, "hello", "hello")
    theirs = publish(bob, "text-stream", "bobs-model")
    page = alice_client.get("/alice/text-train").content.decode()
    assert 'href="/alice/text-train/train"' in page  # the tab
    assert "/alice/hello/train" not in alice_client.get("/alice/hello").content.decode()
    assert alice_client.get("/alice/hello/train").status_code == 404

    html = alice_client.get("/alice/text-train/train").content.decode()
    assert 'type="file" id="input-text_file" name="text_file"' in html
    assert 'name="order"' in html and 'max="3"' in html
    assert 'role="switch" id="input-lowercase"' in html
    assert 'name="length"' not in html  # a predict input, not a training one
    # The picker: the models alice may write, not bob's.
    assert '<option value="alice/hello">' in html and '<option value="alice/text-train">' in html
    assert theirs.model.full_name not in html
    assert 'name="csrfmiddlewaretoken"' in html


def test_a_training_from_the_form_makes_a_private_destination_and_a_live_page(
    alice_client: Client, trainable: Version
) -> None:
    response = post_training(alice_client, "alice/text-train")
    assert response.status_code == 302, response.content.decode()[:2000]
    training = Prediction.objects.get()
    assert response["Location"] == f"/p/{training.pk}"
    assert training.kind == "training" and training.source == "web"
    assert training.input["order"] == 3 and training.input["text_file"].startswith("http")
    destination = Model.objects.get(name="astro")
    assert training.destination == destination
    assert destination.visibility == "private" and destination.owner.username == "alice"

    page = alice_client.get(f"/p/{training.pk}").content.decode()
    assert "<h1>Training <code>" in page and "Destination: <strong>alice/astro" in page
    assert "Text File" in page and "Order" in page  # its inputs, by TrainingInput
    assert f'href="/alice/text-train/train?tweak={training.pk}"' in page
    # "Tweak it" refills the Train form: its inputs and its destination.
    tweak = alice_client.get(f"/alice/text-train/train?tweak={training.pk}").content.decode()
    assert f'Tweaking <a href="/p/{training.pk}">' in tweak
    assert 'name="order" min="1" max="3" step="1" value="3"' in tweak
    assert '<option value="alice/astro" selected>' in tweak
    history = alice_client.get("/account/predictions?kind=training").content.decode()
    assert training.pk in history and "alice/text-train → alice/astro" in history
    assert (
        training.pk not in alice_client.get("/account/predictions?kind=prediction").content.decode()
    )


def test_refused_trainings_leave_nothing_behind(
    alice_client: Client, trainable: Version, bob: Any
) -> None:
    private(publish(bob, "hello", "secret"))
    publish(bob, "text-stream", "open")
    cases = [
        ({"order": "9"}, "input-order-error"),
        ({"destination": "bob/secret"}, "does not exist"),
        ({"destination": "bob/open"}, "cannot write"),
        ({"new_owner": "bob", "new_name": "mine"}, "cannot create models under bob"),
        ({"new_name": ""}, "Name the new model"),
    ]
    for extra, message in cases:
        response = post_training(alice_client, "alice/text-train", **extra)
        assert response.status_code == 422, extra
        assert message in response.content.decode(), extra
    missing = alice_client.post(
        "/alice/text-train/train", {"order": "2", "new_owner": "alice", "new_name": "astro"}
    )
    assert missing.status_code == 422 and "input-text_file-error" in missing.content.decode()
    assert not Prediction.objects.exists()
    assert not Model.objects.filter(name__in=["astro", "mine"]).exists()
    assert not StoredFile.objects.exists()  # the uploads of refused trainings are not kept


def test_outsiders_anonymous_and_csrf(
    alice_client: Client, mallory_client: Client, trainable: Version, user: Any
) -> None:
    private(trainable)
    assert mallory_client.get("/alice/text-train/train").status_code == 404
    assert post_training(mallory_client, "alice/text-train").status_code == 404
    anonymous = Client()
    assert anonymous.get("/alice/text-train/train").status_code == 404
    Model.objects.filter(pk=trainable.model_id).update(visibility="public")
    html = anonymous.get("/alice/text-train/train").content.decode()
    assert "Log in to train this model" in html and 'name="destination"' not in html
    refused = post_training(anonymous, "alice/text-train")
    assert refused.status_code == 302 and "/account/login" in refused["Location"]

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    assert post_training(strict, "alice/text-train").status_code == 403
    assert not Prediction.objects.exists()

    # Someone else's training: 404, as predictions are.
    assert post_training(alice_client, "alice/text-train").status_code == 302
    training = Prediction.objects.get()
    assert mallory_client.get(f"/p/{training.pk}").status_code == 404
    assert mallory_client.get(f"/p/{training.pk}/json").status_code == 404
    assert mallory_client.post(f"/p/{training.pk}/cancel").status_code == 404
    assert mallory_client.get(f"/alice/text-train/train?tweak={training.pk}").status_code == 404


def test_a_trained_version_shows_its_base_training_and_inputs(
    alice_client: Client, mallory_client: Client, trainable: Version, user: Any
) -> None:
    training = prediction_create(
        version=trainable,
        input={"text_file": "data:text/plain;base64,aGk=", "order": 3, "lowercase": True},
        account=user.account,
        created_by=user,
        destination="alice/astro",
    )
    name = f"outputs/{training.pk}/weights.json"
    StoredFile.record_output(name, training.pk)
    from marketplace import storage

    assert prediction_finish(
        training.pk, Outcome("succeeded", output={"weights": storage.reference(name)})
    )
    trained = Version.objects.get(training=training)
    assert trained.model.full_name == "alice/astro" and trained.trained_from == trainable

    page = alice_client.get(f"/p/{training.pk}").content.decode()
    assert f'href="/alice/astro?version={trained.pk}"' in page  # the link to the new version
    state = alice_client.get(f"/p/{training.pk}/json").json()
    assert state["trained_version"]["url"] == f"/alice/astro?version={trained.pk}"

    versions = alice_client.get("/alice/astro/versions").content.decode()
    assert f'href="/alice/text-train?version={trainable.pk}"' in versions
    assert f'href="/p/{training.pk}"' in versions
    assert "<dt>Order</dt><dd>3</dd>" in versions and "<dt>Lowercase</dt><dd>true</dd>" in versions
    playground = alice_client.get(f"/alice/astro?version={trained.pk}").content.decode()
    assert "This version was trained from" in playground
    # The trained model is private: outsiders see none of it.
    assert mallory_client.get("/alice/astro/versions").status_code == 404
    # Made public, its viewers see the base and the inputs, but not the training's page.
    Model.objects.filter(name="astro").update(visibility="public")
    versions = mallory_client.get("/alice/astro/versions").content.decode()
    assert "<dt>Order</dt><dd>3</dd>" in versions and f'href="/p/{training.pk}"' not in versions
