"""Strings that cannot be encoded, already stored, render instead of failing every page.

PostgreSQL never stored them (``jsonb`` refuses ``\\ud800``), but SQLite — the embedded
default — kept whatever JSON text it was given, and every listing and page that showed such a
row answered 500 for good. The SQLite part runs in a child process on a fresh SQLite database;
the PostgreSQL part checks that what models produce is repaired on the way in.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from marketplace.predictions.models import Prediction
from marketplace.predictions.services import Outcome, prediction_create, prediction_finish
from tests.conftest import BASE_DIR, child_env
from tests.factories import publish

SCRIPT = r"""
import json, django
django.setup()
from django.test.utils import setup_test_environment
setup_test_environment()  # the test client's host, as under pytest
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.db import connection
from django.test import Client
from rest_framework.test import APIClient
from marketplace.predictions.models import Prediction
from marketplace.predictions.services import Outcome, prediction_create, prediction_finish
from marketplace.predictions.uploads import UploadedFile
from tests.factories import UserFactory, publish, token_for

user = UserFactory(username="alice")
version = publish(user, "hello")
p = prediction_create(version=version, input={"text": "x"}, account=user.account, created_by=user)
prediction_finish(p.pk, Outcome("succeeded", output="hello x"))
api = APIClient()
api.credentials(HTTP_AUTHORIZATION="Bearer " + token_for(user))
from django.core.files.uploadedfile import SimpleUploadedFile
file_id = api.post(
    "/v1/files", {"content": SimpleUploadedFile("a.txt", b"abc")}, format="multipart"
).json()["id"]
# What the code before the door stored: JSON text with escaped lone surrogates and a NUL.
with connection.cursor() as cursor:
    cursor.execute(
        "UPDATE predictions_prediction SET input = %s, output = %s WHERE id = %s",
        ['{"text": "bad \\ud800 text", "\\udfff": 1}', '"out \\udc00 \\u0000"', p.pk],
    )
    cursor.execute(
        "UPDATE predictions_uploadedfile SET metadata = %s WHERE id = %s",
        ['{"k": "\\ud800"}', file_id],
    )
site = Client()
site.force_login(user)
out = {}
for name, response in [
    ("predictions", api.get("/v1/predictions")),
    ("prediction", api.get(f"/v1/predictions/{p.pk}")),
    ("files", api.get("/v1/files")),
    ("file", api.get(f"/v1/files/{file_id}")),
    ("page", site.get(f"/p/{p.pk}")),
    ("history", site.get("/account/predictions")),
]:
    out[name] = {"status": response.status_code, "body": response.content.decode("utf-8")}
print("RESULT " + json.dumps(out))
"""


@pytest.mark.slow
def test_rows_stored_with_lone_surrogates_render_on_sqlite(tmp_path: Path, settings: Any) -> None:
    env = child_env(DJANGO_SETTINGS_MODULE="tests.settings", VAR_DIR=str(tmp_path))
    env.pop("DATABASE_URL", None)
    env.pop("TEST_DATABASE_NAME", None)
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env=env,
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert result.returncode == 0 and lines, result.stdout[-3000:] + result.stderr[-5000:]
    out = json.loads(lines[0].removeprefix("RESULT "))
    for name, answer in out.items():
        assert answer["status"] == 200, (name, answer["body"][:2000])
    prediction = json.loads(out["prediction"]["body"])
    assert prediction["input"] == {"text": "bad \ufffd text", "\ufffd": 1}
    assert prediction["output"] == "out \ufffd \ufffd"
    assert json.loads(out["file"]["body"])["metadata"] == {"k": "\ufffd"}
    assert "bad \ufffd text" in out["page"]["body"]


@pytest.mark.django_db
def test_unstorable_strings_a_model_returns_are_repaired_on_postgresql(user: Any) -> None:
    version = publish(user, "hello")
    prediction = prediction_create(
        version=version, input={"text": "x"}, account=user.account, created_by=user
    )
    # Models write outputs; PostgreSQL's jsonb refuses lone surrogates and NUL outright.
    assert prediction_finish(
        prediction.pk, Outcome("succeeded", output={"a\ud800": ["x\udfff", "nul\x00"]})
    )
    stored = Prediction.objects.get(pk=prediction.pk)
    assert stored.output == {"a\ufffd": ["x\ufffd", "nul\ufffd"]}
