"""Expired uploads are purged: the stored content and the record, by `manage.py purge_files`."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from marketplace.files.access import resolve_for_model
from marketplace.predictions.uploads import UploadedFile

pytestmark = pytest.mark.django_db(transaction=True)


def upload(api: APIClient, data: bytes) -> UploadedFile:
    content = SimpleUploadedFile("in.bin", data, content_type="application/octet-stream")
    response = api.post("/v1/files", {"content": content}, format="multipart")
    assert response.status_code == 201, response.content
    return UploadedFile.objects.get(pk=response.json()["id"])


def expire(uploaded: UploadedFile) -> None:
    UploadedFile.objects.filter(pk=uploaded.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )


def test_purge_deletes_expired_content_and_rows_and_keeps_live_ones(api: APIClient) -> None:
    old, fresh = upload(api, b"old bytes"), upload(api, b"fresh bytes")
    old_path = Path(default_storage.path(old.content.name))
    fresh_path = Path(default_storage.path(fresh.content.name))
    assert old_path.read_bytes() == b"old bytes" and fresh_path.exists()
    expire(old)

    out = StringIO()
    call_command("purge_files", stdout=out)
    assert out.getvalue().strip() == "purged 1 expired upload(s)"
    assert not UploadedFile.objects.filter(pk=old.pk).exists()
    assert not old_path.exists() and not old_path.parent.exists()  # uploads/<token>/ too
    assert fresh_path.read_bytes() == b"fresh bytes"
    assert api.get(f"/v1/files/{fresh.pk}/download").status_code == 200

    # Nothing left to do: a second run (or a concurrent one) purges nothing and fails nothing.
    out = StringIO()
    call_command("purge_files", stdout=out)
    assert out.getvalue().strip() == "purged 0 expired upload(s)"


def test_a_row_whose_content_is_already_gone_is_still_purged(api: APIClient) -> None:
    uploaded = upload(api, b"x")
    default_storage.delete(uploaded.content.name)
    expire(uploaded)
    call_command("purge_files", stdout=StringIO())
    assert not UploadedFile.objects.filter(pk=uploaded.pk).exists()


IMAGE_INPUT = {"components": {"schemas": {"Input": {"properties": {"image": {"format": "uri"}}}}}}


def test_a_queued_prediction_whose_file_expired_is_told_so(api: APIClient, user: Any) -> None:
    uploaded = upload(api, b"x")
    expire(uploaded)

    def resolve() -> Any:
        # What the runner calls just before dispatch; its ValueError fails the prediction.
        return resolve_for_model(
            {"image": uploaded.api_url}, account_id=user.account.pk, openapi=IMAGE_INPUT
        )

    with pytest.raises(ValueError, match=rf"{uploaded.pk} given as input.image has expired"):
        resolve()
    call_command("purge_files", stdout=StringIO())
    with pytest.raises(ValueError, match="expired or was deleted"):
        resolve()
