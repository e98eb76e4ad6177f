"""Search, tags, covers and the latest version through ``/v1``."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.test import Client
from PIL import Image
from rest_framework.test import APIClient

from marketplace.audit.models import AuditEvent
from marketplace.catalog import covers
from marketplace.catalog.models import Model, Tag, Version
from tests.factories import private, publish

pytestmark = pytest.mark.django_db


def png(width: int = 32, height: int = 20) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "teal").save(buffer, format="PNG")
    return buffer.getvalue()


class ImageServer:
    """Serves fixed answers on loopback: path → (status, content type, body, extra headers)."""

    def __init__(self, routes: dict[str, tuple[int, str, bytes, dict[str, str]]]) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, kind, body, headers = routes.get(self.path, (404, "text/plain", b"", {}))
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def images() -> Iterator[ImageServer]:
    big = png(4000, 4000)
    server = ImageServer(
        {
            "/cover.png": (200, "image/png", png(), {}),
            "/page.html": (200, "text/html", b"<html></html>", {}),
            "/fake.png": (200, "image/png", b"not an image at all", {}),
            "/huge.png": (200, "image/png", big + b"\0" * covers.COVER_MAX_BYTES, {}),
            "/moved.png": (302, "text/plain", b"", {"Location": "/cover.png"}),
        }
    )
    yield server
    server.server.shutdown()


def create(api: APIClient, **extra: Any) -> Any:
    body = {"owner": "alice", "name": "pic", "visibility": "public", "hardware": "cpu", **extra}
    return api.post("/v1/models", body, format="json")


def test_models_create_fetches_and_stores_the_cover(
    api: APIClient, user: Any, images: ImageServer, settings: Any, tmp_path: Any
) -> None:
    settings.MEDIA_ROOT = str(tmp_path)
    publish(user, "hello")  # the cpu hardware
    response = create(api, cover_image_url=f"{images.url}/cover.png", tags=["art", "Photo"])
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["cover_image_url"].startswith(f"{settings.PUBLIC_URL}/files/covers/")
    assert body["cover_image_url"].endswith("/cover.png")
    assert body["tags"] == ["art", "photo"]
    served = Client().get(body["cover_image_url"].removeprefix(settings.PUBLIC_URL))
    assert served.status_code == 200
    assert Image.open(io.BytesIO(b"".join(served.streaming_content))).size == (32, 20)
    assert api.get("/v1/models/alice/pic").json()["cover_image_url"] == body["cover_image_url"]


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/page.html", "not an image"),
        ("/fake.png", "not an image"),
        ("/huge.png", "larger than 5 MB"),
        ("/moved.png", "redirects are not followed"),
        ("/missing.png", "answered 404"),
    ],
)
def test_a_bad_cover_is_400_naming_the_field_and_stores_nothing(
    api: APIClient, user: Any, images: ImageServer, path: str, reason: str
) -> None:
    publish(user, "hello")
    response = create(api, cover_image_url=images.url + path)
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    [field] = response.json()["invalid_fields"]
    assert field["field"] == "cover_image_url" and reason in field["description"]
    assert not Model.objects.filter(name="pic").exists()
    assert not AuditEvent.objects.filter(action="model.create").exists()


def test_a_cover_on_an_internal_address_is_refused(
    api: APIClient, user: Any, images: ImageServer, settings: Any
) -> None:
    settings.OUTBOUND_ALLOW_CIDRS = []  # the default: loopback and private networks refused
    publish(user, "hello")
    response = create(api, cover_image_url=f"{images.url}/cover.png")
    assert response.status_code == 400
    assert "internal address" in response.json()["invalid_fields"][0]["description"]
    assert not Model.objects.filter(name="pic").exists()


def test_owners_set_tags_and_bad_tags_change_nothing(api: APIClient, user: Any) -> None:
    publish(user, "hello")
    response = api.patch("/v1/models/alice/hello", {"tags": ["greeting", "text"]}, format="json")
    assert response.status_code == 200 and response.json()["tags"] == ["greeting", "text"]
    assert AuditEvent.objects.filter(action="model.update").last().data["fields"] == ["tags"]
    for bad in (["No Spaces"], "greeting", [1], [f"t{i}" for i in range(11)], ["x" * 33]):
        refused = api.patch("/v1/models/alice/hello", {"tags": bad}, format="json")
        assert refused.status_code == 400, bad
        assert refused.json()["invalid_fields"][0]["field"] == "tags"
    assert sorted(Tag.objects.values_list("name", flat=True)) == ["greeting", "text"]
    found = APIClient().get("/v1/search", {"query": "greeting"}).json()["models"]
    assert [m["metadata"]["tags"] for m in found] == [["greeting", "text"]]


def test_search_ranks_public_models_with_scores(
    api: APIClient, outsider_api: APIClient, user: Any
) -> None:
    hello = publish(user, "hello")
    stream = publish(user, "text-stream")
    secret = private(publish(user, "slow-progress", "hello-secret"))
    Model.objects.filter(pk=stream.model_id).update(readme="Say hello politely.")
    stream.model.refresh_from_db()
    stream.model.save()  # reindexed
    found = APIClient().get("/v1/search", {"query": "hello", "limit": 5}).json()["models"]
    names = [m["model"]["name"] for m in found]
    assert names[0] == "hello" and "text-stream" in names and "hello-secret" not in names
    scores = [m["metadata"]["score"] for m in found]
    assert scores == sorted(scores, reverse=True) and scores[0] == 1.0 and scores[-1] < 1.0
    assert found[0]["metadata"]["generated_description"] == hello.model.description
    # QUERY /v1/models: public only, even for the owner, most relevant first; JS sends JSON.
    for body in ("hello", '"hello"'):
        listed = api.generic("QUERY", "/v1/models", body, content_type="text/plain").json()
        assert [m["name"] for m in listed["results"]] == names
    assert secret.model.name not in str(outsider_api.get("/v1/search", {"query": "secret"}).json())
    typo = APIClient().get("/v1/search", {"query": "helo"}).json()["models"]
    assert typo and typo[0]["model"]["name"] == "hello"


def test_search_pages_follow_the_ranking(api: APIClient, user: Any) -> None:
    first = publish(user, "hello")
    template = Model.objects.get(pk=first.model_id)
    Model.objects.bulk_create(
        Model(owner=user.account, name=f"echo-{i}", default_hardware=template.default_hardware,
              description="echo", run_count=i)
        for i in range(120)
    )  # fmt: skip
    for model in Model.objects.filter(name__startswith="echo-"):
        model.save()  # indexed
    page = api.generic("QUERY", "/v1/models", "echo", content_type="text/plain").json()
    seen = [m["name"] for m in page["results"]]
    page = (
        APIClient(HTTP_AUTHORIZATION=api._credentials["HTTP_AUTHORIZATION"])
        .generic("QUERY", page["next"], "echo", content_type="text/plain")
        .json()
    )
    seen += [m["name"] for m in page["results"]]
    assert seen == [f"echo-{i}" for i in range(119, -1, -1)]  # same score: most run first


def test_the_latest_version_is_kept_as_versions_come_and_go(api: APIClient, user: Any) -> None:
    old = publish(user, "hello")
    new = publish(user, "slow-progress", "hello")
    model = Model.objects.get(pk=old.model_id)
    assert model.latest_version_id == new.pk
    assert api.get("/v1/models/alice/hello").json()["latest_version"]["id"] == new.pk
    Version.objects.filter(pk=new.pk).set_hidden(True)
    model.refresh_from_db()
    assert model.latest_version_id == old.pk
    assert model.latest_version_created_at == old.created_at
    assert api.get("/v1/models", {"sort_by": "latest_version_created_at"}).json()["results"]
