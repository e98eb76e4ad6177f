from __future__ import annotations

import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client

from marketplace import storage

pytestmark = pytest.mark.django_db


def test_stored_outputs_are_served_with_their_type() -> None:
    name = default_storage.save("outputs/p1/tok/result.png", ContentFile(b"\x89PNG fake"))
    response = Client().get(storage.signed_url(name).removeprefix(settings.PUBLIC_URL))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"
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
    name = default_storage.save("outputs/p1/tok/result.txt", ContentFile(b"mine"))
    path = storage.signed_url(name).removeprefix(settings.PUBLIC_URL)
    assert Client().get(f"/files/{name}").status_code == 404  # the bare path grants nothing
    tampered = path.replace(name, f"{name}x")  # another name under the same signature
    assert Client().get(tampered).status_code == 404
    expired = storage.signed_url(name, ttl=-5).removeprefix(settings.PUBLIC_URL)
    assert Client().get(expired).status_code == 403
