"""Uploads and outputs in an S3-compatible bucket (moto's server on loopback), end to end through
a live web process and a host agent running the real Cog server of ``demo/image-filter``."""

from __future__ import annotations

import io
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client
from PIL import Image

from marketplace import storage
from marketplace.files.models import StoredFile
from marketplace.predictions.models import Prediction
from tests.conftest import wait_for
from tests.factories import UserFactory, publish, token_for
from tests.storage.conftest import Bucket

pytestmark = pytest.mark.django_db(transaction=True)


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.slow
def test_file_input_and_output_travel_through_the_bucket(
    start_web: Any, start_agent: Any, user: Any, s3_bucket: Bucket
) -> None:
    publish(user, "image-filter")
    web = start_web(**s3_bucket.env)
    start_agent(PUBLIC_URL=web.url, **s3_bucket.env)
    auth = {"Authorization": f"Bearer {token_for(user)}"}

    uploaded = httpx.post(
        f"{web.url}/v1/files",
        headers=auth,
        files={"content": ("red.png", png_bytes(), "image/png")},
    )
    assert uploaded.status_code == 201, uploaded.text
    file_url = uploaded.json()["urls"]["get"]
    [upload_key] = s3_bucket.object_keys()
    assert upload_key.startswith("uploads/") and upload_key.endswith("/red.png")
    assert s3_bucket.read(upload_key) == png_bytes()

    created = httpx.post(
        f"{web.url}/v1/predictions",
        headers=auth,
        json={
            "version": "alice/image-filter",
            "input": {"image": file_url, "filter": "invert", "size": 40},
        },
    )
    assert created.status_code == 201, created.text
    get_url = created.json()["urls"]["get"]

    def finished() -> dict[str, Any] | None:
        body: dict[str, Any] = httpx.get(get_url, headers=auth).json()
        return body if body["status"] in ("succeeded", "failed", "canceled") else None

    body = wait_for(finished, timeout=120, message="the prediction to finish")
    assert body["status"] == "succeeded", body
    # The API hands out the app's signed URL; without credentials it redirects to a short-lived
    # presigned GET on the bucket (tests/storage/test_refusing_s3.py: why not directly).
    output_url = body["output"]
    assert output_url.startswith(f"{web.url}/files/outputs/{body['id']}/")
    location = httpx.get(output_url).headers["location"]
    assert location.startswith(f"{s3_bucket.endpoint}/{s3_bucket.name}/outputs/{body['id']}/")
    assert int(parse_qs(urlparse(location).query)["X-Amz-Expires"][0]) <= 300
    image = Image.open(io.BytesIO(httpx.get(output_url, follow_redirects=True).content))
    assert image.size == (40, 30) and image.getpixel((0, 0))[0] < 100  # inverted red
    # The database keeps the stable reference, never an expiring URL.
    stored = Prediction.objects.get(pk=body["id"]).output
    assert stored.startswith(f"{web.url}/files/outputs/{body['id']}/")
    output_key = storage.name_of(stored)
    assert output_key in s3_bucket.object_keys()
    # Without a signature the app serves nothing from the bucket.
    assert httpx.get(stored).status_code == 404

    # Deleting the upload removes its object.
    file_id = file_url.rsplit("/", 1)[1]
    assert httpx.delete(f"{web.url}/v1/files/{file_id}", headers=auth).status_code == 204
    assert upload_key not in s3_bucket.object_keys()


def test_private_buckets_are_streamed_by_the_app_and_expired_links_refused(
    s3_bucket: Bucket, settings: Any
) -> None:
    settings.S3_PRIVATE_STREAM = True
    name = default_storage.save("outputs/p1/token/result.txt", ContentFile(b"x" * 100_000))
    StoredFile.record(name, StoredFile.Kind.OUTPUT, UserFactory().account.pk)
    assert s3_bucket.read(name) == b"x" * 100_000
    url = storage.signed_url(name)
    assert url.startswith(f"{settings.PUBLIC_URL}/files/{name}?expires=")
    response = Client().get(url.removeprefix(settings.PUBLIC_URL))
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"x" * 100_000

    expired = storage.signed_url(name, ttl=-1).removeprefix(settings.PUBLIC_URL)
    assert Client().get(expired).status_code == 403
    forged = url.replace("signature=", "signature=x").removeprefix(settings.PUBLIC_URL)
    assert Client().get(forged).status_code == 404
    missing = storage.signed_url("outputs/p1/token/nope.txt").removeprefix(settings.PUBLIC_URL)
    assert Client().get(missing).status_code == 404


def test_model_servers_get_presigned_urls_with_the_asked_lifetime(
    s3_bucket: Bucket, settings: Any
) -> None:
    name = default_storage.save("outputs/p2/token/a.txt", ContentFile(b"abc"))
    url = storage.download_url(name, ttl=120)
    assert parse_qs(urlparse(url).query)["X-Amz-Expires"] == ["120"]
    assert httpx.get(url).content == b"abc"
