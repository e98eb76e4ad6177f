from __future__ import annotations

import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client

from marketplace import storage
from marketplace.files.models import StoredFile
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def stored(name: str, content: bytes) -> str:
    """A file saved with its ownership row, as uploads and outputs are."""
    name = default_storage.save(name, ContentFile(content))
    StoredFile.record(name, StoredFile.Kind.OUTPUT, UserFactory().account.pk)
    return name


def test_stored_outputs_are_served_with_their_type() -> None:
    name = stored("outputs/p1/tok/result.png", b"\x89PNG fake")
    response = Client().get(storage.signed_url(name).removeprefix(settings.PUBLIC_URL))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"
    # Whatever a stored file holds runs in no origin if opened directly.
    assert "sandbox" in response["Content-Security-Policy"]
    assert b"".join(response.streaming_content) == b"\x89PNG fake"


@pytest.mark.parametrize(
    "path",
    [
        "outputs/nope/missing.png",
        "secret.txt",
        "instances/1.log",
        "outputs/../../settings.py",
        "covers/../db.sqlite3",
    ],
)
def test_only_platform_generated_paths_are_served(path: str) -> None:
    default_storage.save("secret.txt", ContentFile(b"not for you"))
    assert Client().get(f"/files/{path}").status_code == 404


def test_outputs_need_a_signed_unexpired_url() -> None:
    name = stored("outputs/p1/tok/result.txt", b"mine")
    path = storage.signed_url(name).removeprefix(settings.PUBLIC_URL)
    assert Client().get(f"/files/{name}").status_code == 404  # the bare path grants nothing
    tampered = path.replace(name, f"{name}x")  # another name under the same signature
    assert Client().get(tampered).status_code == 404
    expired = storage.signed_url(name, ttl=-5).removeprefix(settings.PUBLIC_URL)
    assert Client().get(expired).status_code == 403


def test_a_signed_url_serves_nothing_once_the_file_has_no_owner_row() -> None:
    name = stored("outputs/p1/tok/result.txt", b"mine")
    path = storage.signed_url(name).removeprefix(settings.PUBLIC_URL)
    assert Client().get(path).status_code == 200
    StoredFile.objects.filter(name=name).delete()
    assert Client().get(path).status_code == 404


def test_covers_are_public_only_when_their_row_says_cover() -> None:
    cover = default_storage.save("covers/tok/c.png", ContentFile(b"\x89PNG"))
    StoredFile.record(cover, StoredFile.Kind.COVER, UserFactory().account.pk)
    assert Client().get(f"/files/{cover}").status_code == 200
    # A name under covers/ without a cover row is not public.
    other = default_storage.save("covers/tok2/c.png", ContentFile(b"\x89PNG"))
    StoredFile.record(other, StoredFile.Kind.UPLOAD, UserFactory().account.pk)
    assert Client().get(f"/files/{other}").status_code == 404
