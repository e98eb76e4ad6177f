"""Featured examples show their files as signed URLs anyone can open — never a raw ``/v1/files``
URL (which leaked the id and needs the owner's token) and never another account's file."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.test import APIClient

from marketplace.predictions import uploads
from marketplace.predictions.models import Prediction
from marketplace.predictions.services import Outcome, prediction_create, prediction_finish
from tests.factories import FIXTURES, UserFactory, publish, token_for

pytestmark = pytest.mark.django_db


def test_examples_show_signed_inputs_not_file_ids(user: Any, api: APIClient) -> None:
    version = publish(user, FIXTURES / "cog" / "file_echo", name="file-echo")
    made = api.post(
        "/v1/files", {"content": SimpleUploadedFile("in.txt", b"in")}, format="multipart"
    )
    file_url = made.json()["urls"]["get"]
    page_upload = uploads.store_input_file(SimpleUploadedFile("p.txt", b"p"), user.account)
    prediction = prediction_create(
        version=version,
        input={"file": file_url, "texts": [page_upload]},
        account=user.account,
        created_by=user,
    )
    prediction_finish(prediction.pk, Outcome("succeeded", output="done"))
    Prediction.objects.filter(pk=prediction.pk).update(is_example=True)

    stranger = APIClient()
    stranger.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(UserFactory(username='eve'))}")
    for body in (
        stranger.get("/v1/models/alice/file-echo/examples").json()["results"][0],
        stranger.get("/v1/models/alice/file-echo").json()["default_example"],
    ):
        shown = body["input"]["file"]
        assert shown != file_url and shown.startswith(file_url + "/download/in.txt?owner=alice&")
        assert f'"{file_url}"' not in str(body).replace("'", '"')
        # Anyone holding the example's answer can open its files while the URLs last.
        download = APIClient().get(shown.removeprefix("http://127.0.0.1:8000"))
        assert download.status_code == 200 and b"".join(download.streaming_content) == b"in"
        page_file = body["input"]["texts"][0]
        assert page_file.startswith(page_upload + "?expires=")
        served = Client().get(page_file.removeprefix("http://127.0.0.1:8000"))
        assert served.status_code == 200 and b"".join(served.streaming_content) == b"p"

    # The page of the example, for someone outside the account.
    outsider = Client()
    outsider.force_login(UserFactory(username="oscar"))
    page = outsider.get(f"/p/{prediction.pk}").content.decode()
    assert f'href="{file_url}"' not in page and "/download/in.txt?owner=alice&amp;" in page


def test_tweaking_someone_elses_example_runs_with_its_files_while_the_urls_last(
    user: Any,
) -> None:
    version = publish(user, FIXTURES / "cog" / "file_echo", name="file-echo")
    upload = uploads.store_input_file(SimpleUploadedFile("p.txt", b"p"), user.account)
    example = prediction_create(
        version=version, input={"file": upload}, account=user.account, created_by=user
    )
    prediction_finish(example.pk, Outcome("succeeded", output="done"))
    Prediction.objects.filter(pk=example.pk).update(is_example=True)

    eve = Client()
    eve.force_login(UserFactory(username="eve"))
    form = eve.get(f"/alice/file-echo?tweak={example.pk}").content.decode()
    signed = form.split('name="file__url" value="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    assert signed.startswith(upload + "?expires=")
    ran = eve.post("/alice/file-echo/run", {"version": version.pk, "file__url": signed})
    assert ran.status_code == 302 and "/p/" in ran["Location"]
    theirs = Prediction.objects.get(pk=ran["Location"].rsplit("/", 1)[1])
    assert theirs.account.username == "eve" and theirs.input["file"] == signed
    # The bare reference itself is alice's file: refused to eve.
    refused = eve.post("/alice/file-echo/run", {"version": version.pk, "file__url": upload})
    assert refused.status_code == 422
