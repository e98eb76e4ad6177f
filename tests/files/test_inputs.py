"""``check_input_files``: the one input-file rule every create path goes through."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from marketplace import storage
from marketplace.files.inputs import check_input_files
from marketplace.files.models import StoredFile
from marketplace.predictions import uploads
from marketplace.predictions.models import Prediction
from marketplace.predictions.services import InputValidationError, prediction_create
from marketplace.predictions.uploads import UploadedFile, default_expiry
from tests.factories import UserFactory, publish

pytestmark = pytest.mark.django_db

SCHEMA = {
    "components": {
        "schemas": {
            "Input": {
                "properties": {
                    "file": {"type": "string", "format": "uri"},
                    "files": {"type": "array", "items": {"type": "string", "format": "uri"}},
                    "text": {"type": "string"},
                }
            }
        }
    }
}


@pytest.fixture
def files(user: Any) -> dict[str, Any]:
    mallory = UserFactory(username="mallory")

    def stored(account: Any) -> str:
        return uploads.store_input_file(SimpleUploadedFile("x.txt", b"x"), account)

    def upload(account: Any) -> UploadedFile:
        made = UploadedFile(
            account=account, name="f", size=1, sha256="0", md5="0", expires_at=default_expiry()
        )
        made.content.save("f.txt", SimpleUploadedFile("f.txt", b"f"), save=False)
        made.save()
        StoredFile.record(str(made.content.name), StoredFile.Kind.FILE, account.pk)
        return made

    return {
        "alice": user.account,
        "mallory": mallory.account,
        "mine": stored(user.account),
        "theirs": stored(mallory.account),
        "my_upload": upload(user.account),
        "their_upload": upload(mallory.account),
    }


def check(account: Any, input: dict[str, Any]) -> Any:
    return check_input_files(openapi=SCHEMA, input=input, account=account)


def name(reference: str) -> str:
    found = storage.name_of(reference)
    assert found is not None
    return found


def test_own_files_resolve_in_any_form_and_become_their_reference(files: dict[str, Any]) -> None:
    mine = files["mine"]
    for form in (
        mine,
        storage.signed_url(name(mine), ttl=-10),
        mine + "?expires=99999999999&signature=forged",
    ):
        result = check(files["alice"], {"file": form, "files": [form], "text": form})
        assert result.errors == []
        assert result.input == {"file": mine, "files": [mine], "text": mine}
        assert result.used == {name(mine)}


def test_a_valid_signed_url_passes_unchanged_whoever_owns_the_file(files: dict[str, Any]) -> None:
    valid = storage.signed_url(name(files["theirs"]))
    result = check(files["alice"], {"file": valid, "files": [valid]})
    assert result.errors == [] and result.input == {"file": valid, "files": [valid]}
    assert result.used == set()  # not alice's: retention will never touch it for her


@pytest.mark.parametrize("form", ["bare", "expired", "forged"])
def test_another_accounts_file_is_refused_in_file_inputs_naming_the_field(
    files: dict[str, Any], form: str
) -> None:
    theirs = files["theirs"]
    ref = {
        "bare": theirs,
        "expired": storage.signed_url(name(theirs), ttl=-10),
        "forged": theirs + "?expires=99999999999&signature=forged",
    }[form]
    result = check(files["alice"], {"file": ref, "files": ["https://example.com/a.png", ref]})
    assert [e.field for e in result.errors] == ["input.file", "input.files.1"]
    assert all("does not exist (or has expired)" in e.description for e in result.errors)


def test_another_accounts_file_stays_an_inert_string_in_string_inputs(
    files: dict[str, Any],
) -> None:
    theirs = storage.signed_url(name(files["theirs"]), ttl=-10)
    result = check(files["alice"], {"text": theirs})
    assert result.errors == [] and result.input == {"text": theirs} and result.used == set()


def test_v1_files_urls_must_be_the_callers_live_uploads(files: dict[str, Any]) -> None:
    mine, theirs = files["my_upload"], files["their_upload"]
    assert check(files["alice"], {"file": mine.api_url}).errors == []
    expired_download = mine.signed_download_url(-10)
    assert check(files["alice"], {"file": expired_download}).input == {"file": mine.api_url}
    refused = check(files["alice"], {"file": theirs.api_url})
    assert [e.field for e in refused.errors] == ["input.file"]
    assert theirs.pk in refused.errors[0].description
    valid = theirs.signed_download_url(60)
    assert check(files["alice"], {"file": valid}).input == {"file": valid}
    UploadedFile.objects.filter(pk=mine.pk).update(expires_at=timezone.now() - timedelta(1))
    assert check(files["alice"], {"file": mine.api_url}).errors != []


def test_other_urls_and_plain_names_are_not_references(files: dict[str, Any]) -> None:
    input = {
        "file": "https://example.com/x.png",
        "text": name(files["theirs"]),  # a stored name is just text
        "files": ["data:text/plain,hi"],
    }
    with CaptureQueriesContext(connection) as queries:
        result = check(files["alice"], input)
    assert result.input == input and result.errors == [] and len(queries) == 0


def test_the_create_service_applies_it_on_every_path(user: Any, files: dict[str, Any]) -> None:
    """prediction_create (API, model and deployment endpoints, playground) refuses, normalises
    and records uses with the same function."""
    version = publish(user, "image-filter")
    with pytest.raises(InputValidationError) as refused:
        prediction_create(
            version=version,
            input={"image": files["theirs"]},
            account=files["alice"],
            created_by=user,
        )
    assert [e.field for e in refused.value.errors] == ["input.image"]
    assert not Prediction.objects.exists()
    expired = storage.signed_url(name(files["mine"]), ttl=-10)
    made = prediction_create(
        version=version, input={"image": expired}, account=files["alice"], created_by=user
    )
    assert made.input["image"] == files["mine"]
    assert list(StoredFile.objects.get(name=name(files["mine"])).used_by.all()) == [made]
