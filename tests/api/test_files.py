"""/v1/files: both clients' multipart shapes, checksums, limits, owners only, use as input."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from rest_framework.test import APIClient

from marketplace.files.access import resolve_for_model
from marketplace.predictions.models import Prediction
from marketplace.predictions.uploads import UploadedFile
from tests.factories import publish

pytestmark = pytest.mark.django_db(transaction=True)


def upload(api: APIClient, data: bytes = b"abc", **parts: Any) -> Any:
    content = SimpleUploadedFile("a.txt", data, content_type="text/plain")
    return api.post("/v1/files", {"content": content, **parts}, format="multipart")


def test_python_shape_metadata_as_a_form_field(api: APIClient) -> None:
    response = upload(api, metadata=json.dumps({"k": 1}))
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["name"] == "a.txt" and body["content_type"] == "text/plain" and body["size"] == 3
    assert body["checksums"] == {
        "sha256": hashlib.sha256(b"abc").hexdigest(),
        "md5": hashlib.md5(b"abc").hexdigest(),  # noqa: S324
    }
    assert body["etag"] == body["checksums"]["md5"] and body["metadata"] == {"k": 1}
    assert body["urls"]["get"] == f"http://127.0.0.1:8000/v1/files/{body['id']}"
    assert response["Location"] == body["urls"]["get"]


def test_js_shape_metadata_as_a_blob_part(api: APIClient) -> None:
    content = SimpleUploadedFile("buffer_1", b"\x00\x01", content_type="application/octet-stream")
    blob = SimpleUploadedFile("blob", b'{"k":2}', content_type="application/json")
    response = api.post("/v1/files", {"content": content, "metadata": blob}, format="multipart")
    assert response.status_code == 201
    assert response.json()["metadata"] == {"k": 2}
    assert response.json()["content_type"] == "application/octet-stream"


def test_missing_content_names_the_field(api: APIClient) -> None:
    response = api.post("/v1/files", {"filename": "x"}, format="multipart")
    assert response.status_code == 400 and "content" in response.json()["detail"]
    assert UploadedFile.objects.count() == 0


@override_settings(FILES_MAX_BYTES=10)
def test_too_large_is_413_and_stores_nothing(api: APIClient) -> None:
    response = upload(api, b"x" * 11)
    assert response.status_code == 413
    assert response["Content-Type"] == "application/problem+json"
    assert "less than" in response.json()["detail"] and UploadedFile.objects.count() == 0


def test_owner_lists_gets_downloads_and_deletes(api: APIClient, outsider_api: APIClient) -> None:
    file_id = upload(api).json()["id"]
    assert [f["id"] for f in api.get("/v1/files").json()["results"]] == [file_id]
    assert api.get(f"/v1/files/{file_id}").json()["id"] == file_id
    download = api.get(f"/v1/files/{file_id}/download")
    assert download.status_code == 200 and b"".join(download.streaming_content) == b"abc"
    # Outsiders: nothing listed, 404 everywhere.
    assert outsider_api.get("/v1/files").json()["results"] == []
    assert outsider_api.get(f"/v1/files/{file_id}").status_code == 404
    assert outsider_api.get(f"/v1/files/{file_id}/download").status_code == 404
    assert APIClient().get(f"/v1/files/{file_id}/download").status_code == 404
    assert outsider_api.delete(f"/v1/files/{file_id}").status_code == 404
    stored = Path(UploadedFile.objects.get(pk=file_id).content.path)
    assert stored.exists()
    assert api.delete(f"/v1/files/{file_id}").status_code == 204
    assert api.get(f"/v1/files/{file_id}").status_code == 404
    # The content and its uploads/<token>/ directory are gone, as when a purge removes it.
    assert not stored.exists() and not stored.parent.exists()


def test_signed_download_urls_work_without_a_token_until_tampered(api: APIClient) -> None:
    file_id = upload(api).json()["id"]
    url = UploadedFile.objects.get(pk=file_id).signed_download_url(60)
    path = url.removeprefix("http://127.0.0.1:8000")
    anonymous = APIClient()
    assert b"".join(anonymous.get(path).streaming_content) == b"abc"
    assert anonymous.get(path.replace("signature=", "signature=x")).status_code == 404
    assert anonymous.get(path.replace("owner=alice", "owner=mallory")).status_code == 404


def test_file_urls_in_input_must_be_the_callers_live_files(
    api: APIClient, outsider_api: APIClient, user: Any
) -> None:
    version = publish(user, "image-filter")
    file_url = upload(api).json()["urls"]["get"]
    theirs = outsider_api.post(
        "/v1/predictions", {"version": version.id, "input": {"image": file_url}}, format="json"
    )
    assert theirs.status_code == 422 and theirs.json()["invalid_fields"][0]["field"] == (
        "input.image"
    )
    mine = api.post(
        "/v1/predictions", {"version": version.id, "input": {"image": file_url}}, format="json"
    )
    assert mine.status_code == 201
    # Shown as a signed download URL (the file is the prediction's account's own), and stored as
    # the client sent it.
    assert mine.json()["input"]["image"].startswith(file_url + "/download/a.txt?owner=alice&")
    assert Prediction.objects.get(pk=mine.json()["id"]).input["image"] == file_url
    # What the model server gets instead: a signed URL it can fetch without a token.
    resolved = resolve_for_model(
        {"image": file_url, "filter": "x"}, account_id=user.account.pk, openapi=version.schema
    )
    assert resolved["image"].startswith(file_url + "/download/a.txt?owner=alice&expiry=")
    assert resolved["filter"] == "x"
