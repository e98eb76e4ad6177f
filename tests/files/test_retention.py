"""Retention deletes only files the expiring prediction's own account owns that nothing kept still
uses: another account's files named in an expired input stay, and so do examples' files."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from marketplace import storage
from marketplace.files.models import StoredFile
from marketplace.predictions import uploads
from marketplace.predictions.models import Prediction
from marketplace.predictions.retention import remove_expired_data
from marketplace.predictions.services import Outcome, prediction_create, prediction_finish
from tests.factories import FIXTURES, UserFactory, publish
from workers.outputs import store_output_stream

pytestmark = pytest.mark.django_db(transaction=True)


def age(prediction: Prediction, days: float) -> None:
    past = timezone.now() - timedelta(days=days)
    Prediction.objects.filter(pk=prediction.pk).update(created_at=past, completed_at=past)


def run(version: Any, user: Any, input: dict[str, Any], example: bool = False) -> tuple[Any, str]:
    """A finished prediction with an output stored as the agent stores one."""
    prediction = prediction_create(
        version=version, input=input, account=user.account, created_by=user
    )
    data = f"out {prediction.pk}".encode()
    out = store_output_stream(prediction.pk, "o.txt", io.BytesIO(data), len(data), "")
    prediction_finish(prediction.pk, Outcome("succeeded", output=out))
    if example:
        Prediction.objects.filter(pk=prediction.pk).update(is_example=True)
    return prediction, str(storage.name_of(out))


def upload(user: Any) -> str:
    return uploads.store_input_file(SimpleUploadedFile("in.txt", b"in"), user.account)


def exists(name: str) -> bool:
    return default_storage.exists(name) and StoredFile.objects.filter(name=name).exists()


def test_another_accounts_files_named_in_an_expired_input_are_never_deleted(
    user: Any, settings: Any
) -> None:
    settings.PREDICTION_RETENTION_DAYS = 30
    version = publish(user, FIXTURES / "cog" / "file_echo", name="file-echo")
    bob = UserFactory(username="bob")
    # Bob's featured example: its upload and its output are promised to stay.
    bob_upload = upload(bob)
    _, example_output = run(version, bob, {"file": bob_upload}, example=True)
    # Bob's ordinary recent files too.
    _, bob_output = run(version, bob, {"texts": ["x"]})
    bob_names = [str(storage.name_of(bob_upload)), example_output, bob_output]

    # Alice names them every way she can: as strings, and as a valid signed URL in a file input.
    refs = [bob_upload, storage.reference(example_output), storage.reference(bob_output)]
    refs += [storage.signed_url(n, ttl=-5) for n in bob_names]
    valid = storage.signed_url(example_output)
    alices, alice_output = run(version, user, {"texts": refs, "file": valid})
    age(alices, 31)

    assert remove_expired_data() == 1
    assert Prediction.objects.get(pk=alices.pk).data_removed is True
    assert all(exists(n) for n in bob_names)
    assert not exists(alice_output)  # her own output goes


def test_own_files_stay_while_a_kept_prediction_uses_them(user: Any, settings: Any) -> None:
    settings.PREDICTION_RETENTION_DAYS = 30
    version = publish(user, FIXTURES / "cog" / "file_echo", name="file-echo")
    shared = upload(user)
    name = str(storage.name_of(shared))
    old, old_output = run(version, user, {"file": shared})
    newer, _ = run(version, user, {"file": storage.signed_url(name, ttl=-5)})
    featured, _ = run(version, user, {"texts": [storage.reference(old_output)]}, example=True)
    age(old, 40)
    age(newer, 10)
    age(featured, 400)

    assert remove_expired_data() == 1
    # The newer prediction still uses the upload; the example still names the old output.
    assert exists(name) and exists(old_output)

    age(newer, 35)
    assert remove_expired_data() == 1
    assert not exists(name)  # nothing kept uses it any more
    assert exists(old_output)  # the example does
