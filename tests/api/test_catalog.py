"""/v1/models, versions, collections, hardware, account, search and the webhook secret."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from rest_framework.test import APIClient

from marketplace.catalog.models import Collection, Model, Version
from marketplace.predictions.models import Prediction
from tests.factories import private, publish

pytestmark = pytest.mark.django_db(transaction=True)


def test_create_get_update_and_delete_a_model(api: APIClient, outsider_api: APIClient) -> None:
    body = {"owner": "alice", "name": "new", "visibility": "private", "hardware": "cpu"}
    created = api.post("/v1/models", body, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["url"].endswith("/alice/new") and created.json()["latest_version"] is None
    assert api.post("/v1/models", body, format="json").status_code == 409
    assert outsider_api.get("/v1/models/alice/new").status_code == 404
    assert outsider_api.post("/v1/models", body, format="json").status_code == 403
    patched = api.patch("/v1/models/alice/new", {"readme": "# Hi"}, format="json")
    assert patched.status_code == 200
    readme = api.get("/v1/models/alice/new/readme")
    assert readme.content == b"# Hi" and readme["Content-Type"].startswith("text/plain")
    assert outsider_api.delete("/v1/models/alice/new").status_code == 404
    assert api.delete("/v1/models/alice/new").status_code == 204
    assert not Model.objects.filter(name="new").exists()


def test_bad_create_names_the_field(api: APIClient) -> None:
    body = {"owner": "alice", "name": "x", "visibility": "private", "hardware": "gpu-none"}
    response = api.post("/v1/models", body, format="json")
    assert response.status_code == 400 and "hardware" in response.json()["detail"]
    missing = api.post("/v1/models", {"owner": "alice"}, format="json")
    assert missing.status_code == 400
    assert {f["field"] for f in missing.json()["invalid_fields"]} >= {"name", "visibility"}


def test_query_search_accepts_both_clients_body_encodings(api: APIClient, user: Any) -> None:
    publish(user, "hello")
    publish(user, "text-stream")
    for body in ("hello", json.dumps("hello")):  # Python raw text, JS a JSON string
        response = api.generic("QUERY", "/v1/models", body, content_type="text/plain")
        assert response.status_code == 200, response.content
        assert [m["name"] for m in response.json()["results"]] == ["hello"]


def test_private_models_are_404_to_outsiders_everywhere(
    api: APIClient, outsider_api: APIClient, user: Any
) -> None:
    version = private(publish(user, "hello"))
    for path in (
        "/v1/models/alice/hello",
        "/v1/models/alice/hello/versions",
        f"/v1/models/alice/hello/versions/{version.id}",
        "/v1/models/alice/hello/examples",
    ):
        assert api.get(path).status_code == 200, path
        assert outsider_api.get(path).status_code == 404, path
    search = outsider_api.generic("QUERY", "/v1/models", "hello", content_type="text/plain")
    assert search.json()["results"] == []
    assert outsider_api.get("/v1/models").json()["results"] == []


def test_deleting_a_used_version_only_hides_it(api: APIClient, user: Any) -> None:
    used = publish(user, "hello")
    api.post("/v1/predictions", {"version": used.id, "input": {}}, format="json")
    response = api.delete(f"/v1/models/alice/hello/versions/{used.id}")
    assert response.status_code == 202
    assert Version.objects.get(pk=used.id).hidden and Prediction.objects.count() == 1
    assert api.get("/v1/models/alice/hello/versions").json()["results"] == []
    # Pinned references still run it; "owner/name" no longer picks it.
    pinned = {"version": f"alice/hello:{used.id}", "input": {}}
    assert api.post("/v1/predictions", pinned, format="json").status_code == 201
    latest = api.post("/v1/predictions", {"version": "alice/hello", "input": {}}, format="json")
    assert latest.status_code == 422


def test_examples_lists_the_owners_featured_predictions(api: APIClient, user: Any) -> None:
    version = publish(user, "hello")
    created = api.post("/v1/predictions", {"version": version.id, "input": {}}, format="json")
    Prediction.objects.filter(pk=created.json()["id"]).update(is_example=True)
    examples = api.get("/v1/models/alice/hello/examples").json()["results"]
    assert [e["id"] for e in examples] == [created.json()["id"]]
    assert api.get("/v1/models/alice/hello").json()["default_example"]["id"] == examples[0]["id"]


def test_collections_hardware_account_secret_and_search(api: APIClient, user: Any) -> None:
    version = publish(user, "hello")
    collection = Collection.objects.create(slug="greeters", name="Greeters", description="Hi")
    collection.members.add(version.model)
    assert api.get("/v1/collections").json()["results"] == [
        {"name": "Greeters", "slug": "greeters", "description": "Hi"}
    ]
    detail = api.get("/v1/collections/greeters").json()
    assert [m["name"] for m in detail["models"]] == ["hello"]
    assert api.get("/v1/collections/nope").status_code == 404
    assert {"sku": "cpu", "name": "CPU"} in api.get("/v1/hardware").json()
    assert api.get("/v1/account").json() == {
        "type": "user",
        "username": "alice",
        "name": "alice",
        "github_url": None,
        "avatar_url": f"{settings.PUBLIC_URL}/avatars/alice.svg",
    }
    avatar = Client().get("/avatars/alice.svg")
    assert avatar.status_code == 200 and avatar["Content-Type"] == "image/svg+xml"
    assert b">A</text>" in avatar.content
    assert Client().get("/avatars/nobody.svg").status_code == 404
    assert api.get("/v1/webhooks/default/secret").json()["key"] == user.account.webhook_secret
    found = APIClient().get("/v1/search", {"query": "greet"}).json()
    assert found["collections"][0]["models"] == ["alice/hello"]
    assert APIClient().get("/v1/search").status_code == 400
