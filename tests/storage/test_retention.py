"""Retention: predictions older than their account's retention lose their files, input, output
and logs, keep their ledger entries, and say ``data_removed: true`` through the API and the
official Python client."""

from __future__ import annotations

import io
from datetime import timedelta
from io import StringIO
from typing import Any

import httpx
import pytest
import replicate
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.utils import timezone
from PIL import Image
from rest_framework.test import APIClient

from marketplace import storage
from marketplace.billing.models import UsageEntry
from marketplace.predictions import uploads
from marketplace.predictions.models import Prediction
from marketplace.predictions.retention import remove_expired_data
from marketplace.predictions.services import prediction_create
from marketplace.predictions.webhooks import WebhookDelivery
from tests.billing.helpers import run
from tests.factories import UserFactory, publish, token_for
from workers.outputs import store_output_stream

pytestmark = pytest.mark.django_db(transaction=True)


def age(prediction: Prediction, days: float) -> None:
    past = timezone.now() - timedelta(days=days)
    Prediction.objects.filter(pk=prediction.pk).update(created_at=past, completed_at=past)


def finished_with_file(
    version: Any, account_user: Any, text: str, input_text: str | None = None
) -> tuple[Prediction, str]:
    """A prediction that ran (so billing wrote its ledger entry) with an output file stored as
    the agent stores one (with its ownership row)."""
    prediction = prediction_create(
        version=version,
        input={"text": input_text or text},
        account=account_user.account,
        created_by=account_user,
        webhook="https://example.com/hook",
    )
    data = text.encode()
    reference = store_output_stream(prediction.pk, "out.txt", io.BytesIO(data), len(data), "")
    run(prediction, 0.5, output=reference)
    Prediction.objects.filter(pk=prediction.pk).update(logs=f"log of {text}")
    name = storage.name_of(reference)
    assert name is not None
    return prediction, name


def test_expired_predictions_lose_their_data_and_keep_their_ledger(
    user: Any, api: APIClient, settings: Any
) -> None:
    settings.PREDICTION_RETENTION_DAYS = 30
    version = publish(user, "hello")
    # A playground upload it was given goes too (stored under uploads/, referenced from input).
    upload_ref = uploads.store_input_file(SimpleUploadedFile("in.txt", b"input"), user.account)
    upload = storage.name_of(upload_ref)
    old, old_file = finished_with_file(version, user, "old", input_text=upload_ref)
    recent, recent_file = finished_with_file(version, user, "recent")
    example, example_file = finished_with_file(version, user, "example")
    age(old, 31)
    age(recent, 29)
    age(example, 400)
    Prediction.objects.filter(pk=example.pk).update(is_example=True)
    # Another account keeps predictions 1 day.
    brief = UserFactory(username="brief")
    brief.account.retention_days = 1
    brief.account.save()
    short, short_file = finished_with_file(version, brief, "short")
    age(short, 2)
    entries_before = UsageEntry.objects.count()
    assert entries_before == 4

    out = StringIO()
    call_command("remove_expired_data", stdout=out)
    assert out.getvalue().strip() == "removed the data of 2 prediction(s)"

    assert not default_storage.exists(old_file) and not default_storage.exists(short_file)
    assert not default_storage.exists(upload)
    assert default_storage.exists(recent_file) and default_storage.exists(example_file)
    body = api.get(f"/v1/predictions/{old.pk}").json()
    assert body["data_removed"] is True
    assert body["input"] == {} and body["output"] is None and body["logs"] == ""
    # Billing's view of it is intact.
    assert body["status"] == "succeeded" and body["cost"] is not None
    assert body["metrics"]["predict_time"] == 0.5
    assert UsageEntry.objects.count() == entries_before
    assert UsageEntry.objects.filter(prediction=old).exists()
    # Its webhook snapshots no longer carry the data either.
    for delivery in WebhookDelivery.objects.filter(prediction=old):
        assert delivery.payload["output"] is None and delivery.payload["data_removed"] is True

    kept = api.get(f"/v1/predictions/{recent.pk}").json()
    assert kept["data_removed"] is False and kept["logs"] == "log of recent"
    assert Prediction.objects.get(pk=example.pk).data_removed is False
    assert Prediction.objects.get(pk=short.pk).data_removed is True

    # A second run finds nothing to do.
    assert remove_expired_data() == 0


@pytest.mark.slow
def test_removed_data_through_the_official_python_client(
    start_web: Any, start_agent: Any, user: Any, settings: Any
) -> None:
    """A real run with a file input and a file output, aged past retention."""
    publish(user, "image-filter")
    web = start_web()
    start_agent(PUBLIC_URL=web.url)
    client = replicate.Client(api_token=token_for(user), base_url=web.url)
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(buffer, format="PNG")
    prediction = client.predictions.create(
        model="alice/image-filter", input={"image": buffer, "filter": "blur", "size": 32}
    )
    prediction.wait()
    assert prediction.status == "succeeded", prediction.error
    output_name = storage.name_of(str(prediction.output))
    assert output_name and default_storage.exists(output_name)
    assert httpx.get(str(prediction.output)).status_code == 200
    assert UsageEntry.objects.filter(prediction_id=prediction.id).exists()

    age(Prediction.objects.get(pk=prediction.id), settings.PREDICTION_RETENTION_DAYS + 1)
    assert remove_expired_data() == 1

    # The 1.0.7 client's Prediction model has no data_removed field (pydantic drops unknown
    # keys); it sees the emptied fields, and the flag is in the JSON its transport receives.
    removed = client.predictions.get(prediction.id)
    assert removed.output is None and not removed.logs and removed.input == {}
    assert removed.status == "succeeded" and removed.metrics
    raw = client._request("GET", f"/v1/predictions/{prediction.id}").json()
    assert raw["data_removed"] is True and raw["cost"] is not None
    assert not default_storage.exists(output_name)
    assert UsageEntry.objects.filter(prediction_id=prediction.id).exists()
