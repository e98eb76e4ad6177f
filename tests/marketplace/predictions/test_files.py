from __future__ import annotations

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client

pytestmark = pytest.mark.django_db


def test_stored_outputs_are_served_with_their_type() -> None:
    name = default_storage.save("outputs/p1/tok/result.png", ContentFile(b"\x89PNG fake"))
    response = Client().get(f"/files/{name}")
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
