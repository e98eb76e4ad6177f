"""The signing invariant over generated predictions by several accounts: every signed URL in any
API answer or page about a prediction is either exactly one its creator sent (a valid signed URL
passes through unchanged) or reads a file that prediction's account owns.

Hypothesis builds predictions whose inputs and outputs mix references of every form to files of
every account (as a careless or hostile client, or a model echoing what it saw, would), through
the real create service, the real output store and the real finish; then every answer that shows
them is read back: the API's get and list, the model's examples and default example, the
prediction page and its JSON for its members and (featured) for outsiders, and webhook bodies.
"""

from __future__ import annotations

import io
import json
import time
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from marketplace import storage
from marketplace.accounts.models import Account, ApiToken, Membership
from marketplace.files.access import sign_api
from marketplace.predictions import uploads
from marketplace.predictions.models import Prediction
from marketplace.predictions.services import (
    InputValidationError,
    Outcome,
    prediction_create,
    prediction_finish,
)
from marketplace.predictions.uploads import UploadedFile
from marketplace.predictions.webhooks import WebhookDelivery
from tests.factories import FIXTURES, UserFactory, publish
from tests.files.helpers import owner_of, signed_urls_in
from workers.outputs import store_output_stream

pytestmark = pytest.mark.django_db(transaction=True)


def pool_of(name: str, file_id: str | None = None) -> list[str]:
    """Every form of reference to one stored file. Valid ones get a TTL the platform never uses
    (a URL it signs itself is then never mistaken for one a client sent)."""
    bare = storage.reference(name)
    refs = [
        bare,
        storage.signed_url(name, ttl=-30),
        f"{bare}?expires={int(time.time()) + 99}&signature=forged",
        storage.signed_url(name, ttl=1234),
        name,
    ]
    if file_id is not None:
        upload = UploadedFile.objects.get(pk=file_id)
        refs += [
            upload.api_url,
            upload.signed_download_url(-30),
            upload.signed_download_url(1234),
            upload.signed_download_url(1234).replace("signature=", "signature=x"),
        ]
    return refs


@pytest.fixture
def world(user: Any) -> dict[str, Any]:
    bob, carol = UserFactory(username="bob"), UserFactory(username="carol")
    acme = Account.objects.create(username="acme", type=Account.Type.ORGANIZATION)
    Membership.objects.create(account=acme, user=bob, role="owner")
    accounts = {"alice": user.account, "bob": bob.account, "carol": carol.account, "acme": acme}
    makers = {"alice": user, "bob": bob, "carol": carol, "acme": bob}
    version = publish(user, FIXTURES / "cog" / "file_echo", name="file-echo")
    refs: list[str] = []
    for name, account in accounts.items():
        upload = uploads.store_input_file(
            SimpleUploadedFile("in.txt", f"upload of {name}".encode()), account
        )
        refs += pool_of(str(storage.name_of(upload)))
        key = ApiToken.create_for(makers[name], "t", account=acme if name == "acme" else None)[1]
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        made = api.post(
            "/v1/files", {"content": SimpleUploadedFile("f.txt", b"f")}, format="multipart"
        )
        file = UploadedFile.objects.get(pk=made.json()["id"])
        refs += pool_of(str(file.content.name), file.pk)
    world = {"version": version, "accounts": accounts, "makers": makers, "refs": refs}
    # An output of each account too (the pool stays fixed while hypothesis draws from it).
    for name in accounts:
        made_one = make(world, name, None, [], [], example=False)
        assert made_one is not None
        made_one.refresh_from_db()
        refs += pool_of(str(storage.name_of(made_one.output[0])))
    world["sent"] = {r for r in refs if signed_urls_in(r) == [r]}
    return world


def make(
    world: dict[str, Any],
    who: str,
    file: str | None,
    texts: list[str],
    echo: list[str],
    example: bool,
) -> Prediction | None:
    """One prediction, as the API or playground would create it, finished with an output the
    way the agent stores one (plus strings a model echoed)."""
    account = world["accounts"][who]
    try:
        prediction = prediction_create(
            version=world["version"],
            input={"texts": texts, **({"file": file} if file else {})},
            account=account,
            created_by=world["makers"][who],
            webhook="https://example.com/hook",
        )
    except InputValidationError:
        return None
    data = f"output of {prediction.pk}".encode()
    stored = store_output_stream(prediction.pk, "o.txt", io.BytesIO(data), len(data), "")
    prediction_finish(prediction.pk, Outcome("succeeded", output=[stored, *echo]))
    if example:
        Prediction.objects.filter(pk=prediction.pk).update(is_example=True)
    return prediction


def check(text: str, account_id: int, sent: set[str], where: str) -> None:
    for url in signed_urls_in(text):
        assert url in sent or owner_of(url) == account_id, (where, url)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_every_signed_url_reads_a_file_of_the_predictions_account(
    world: dict[str, Any], data: Any
) -> None:
    who = st.sampled_from(sorted(world["accounts"]))
    ref = st.sampled_from(world["refs"])
    made = []
    for _ in range(data.draw(st.integers(1, 4))):
        prediction = make(
            world,
            data.draw(who),
            data.draw(st.one_of(st.none(), ref)),
            data.draw(st.lists(ref, max_size=4)),
            data.draw(st.lists(ref, max_size=3)),
            data.draw(st.booleans()),
        )
        if prediction is not None:
            made.append(prediction)
    sent = world["sent"]
    outsider = Client()
    outsider_user = UserFactory(username="mallory")
    outsider.force_login(outsider_user)
    # Each new prediction in detail (earlier ones were read in earlier examples)...
    for prediction in Prediction.objects.select_related("account").filter(
        pk__in=[p.pk for p in made]
    ):
        account_id = prediction.account_id
        member = world["makers"][prediction.account.username]
        site = Client()
        site.force_login(member)
        api = APIClient()
        scope = prediction.account if prediction.account.type == Account.Type.ORGANIZATION else None
        api.credentials(
            HTTP_AUTHORIZATION=f"Bearer {ApiToken.create_for(member, 'i', account=scope)[1]}"
        )
        answers = {
            "api get": api.get(f"/v1/predictions/{prediction.pk}"),
            "page": site.get(f"/p/{prediction.pk}"),
            "page json": site.get(f"/p/{prediction.pk}/json"),
        }
        if prediction.is_example:
            answers["outsider page"] = outsider.get(f"/p/{prediction.pk}")
            answers["outsider json"] = outsider.get(f"/p/{prediction.pk}/json")
        for where, response in answers.items():
            assert response.status_code == 200, where
            check(response.content.decode(), account_id, sent, where)
        for delivery in WebhookDelivery.objects.filter(prediction=prediction):
            body = json.dumps(sign_api(prediction, delivery.payload))
            check(body, account_id, sent, "webhook")
    # ...and every listing, which shows them all: each signed URL in an item is that item's.
    for name, maker in world["makers"].items():
        account = world["accounts"][name]
        scope = account if account.type == Account.Type.ORGANIZATION else None
        api = APIClient()
        api.credentials(
            HTTP_AUTHORIZATION=f"Bearer {ApiToken.create_for(maker, 'l', account=scope)[1]}"
        )
        for item in api.get("/v1/predictions").json()["results"]:
            check(json.dumps(item), account.pk, sent, "api list")
    stranger = APIClient()
    stranger.credentials(HTTP_AUTHORIZATION=f"Bearer {ApiToken.create_for(outsider_user)[1]}")
    examples = stranger.get("/v1/models/alice/file-echo/examples").json()["results"]
    for item in examples:
        owner = Prediction.objects.get(pk=item["id"]).account_id
        check(json.dumps(item), owner, sent, "examples")
    model = stranger.get("/v1/models/alice/file-echo").json()
    if model["default_example"]:
        owner = Prediction.objects.get(pk=model["default_example"]["id"]).account_id
        check(json.dumps(model["default_example"]), owner, sent, "default example")
    page = outsider.get("/alice/file-echo/examples")
    assert page.status_code == 200
    for url in signed_urls_in(page.content.decode()):
        owners = {owner_of(url)}
        featured = set(
            Prediction.objects.filter(is_example=True).values_list("account_id", flat=True)
        )
        assert url in sent or owners <= featured, ("examples page", url)
