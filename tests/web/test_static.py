"""Static files: content-hashed names in production, served with a year-long immutable cache."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client

pytestmark = pytest.mark.django_db


def test_static_assets_get_hashed_names_and_far_future_caching(
    settings: Any, tmp_path: Path
) -> None:
    settings.DEBUG = False
    settings.STATIC_ROOT = tmp_path
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }
    call_command("collectstatic", interactive=False, verbosity=0)
    client = Client()
    html = client.get("/").content.decode()
    css = re.search(r'href="(/static/css/base\.[0-9a-f]{12}\.css)"', html)
    assert css, html[:500]
    response = client.get(css.group(1))
    assert response.status_code == 200
    assert "immutable" in response["Cache-Control"]
    assert "max-age=315360000" in response["Cache-Control"]
    # Compressed copies exist for clients that accept them.
    assert client.get(css.group(1), headers={"Accept-Encoding": "gzip"})["Content-Encoding"] in (
        "gzip",
        "br",
    )
