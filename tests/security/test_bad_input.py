"""Bad input is a 4xx problem document, never a 500, and never stored — on the live ASGI server
(so body sizes go through the real request path). After each refusal the account's listings
still answer 200."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from marketplace.files.models import StoredFile
from marketplace.predictions.models import Prediction
from marketplace.predictions.uploads import UploadedFile
from tests.factories import publish, token_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

DEEP = '{"text": ' + "[" * 10_000 + "]" * 10_000 + "}"
SURROGATE = '"\\ud800"'


@pytest.fixture
def live(user: Any, start_web: Any) -> dict[str, Any]:
    version = publish(user, "hello")
    web = start_web(API_RATE_LIMIT="1000000", API_RATE_LIMIT_CREATE="1000000")
    client = httpx.Client(
        base_url=web.url,
        headers={"Authorization": f"Bearer {token_for(user)}"},
        timeout=60,
    )
    deployment = client.post(
        "/v1/deployments",
        json={
            "name": "hello-dep",
            "model": "alice/hello",
            "version": version.pk,
            "hardware": "cpu",
            "min_instances": 0,
            "max_instances": 1,
        },
    )
    assert deployment.status_code == 201, deployment.text
    return {"web": web, "client": client, "version": version}


CREATES = [
    "/v1/predictions",
    "/v1/models/alice/hello/predictions",
    "/v1/deployments/alice/hello-dep/predictions",
]


def body(live: dict[str, Any], path: str, input_json: str, extra: str = "") -> str:
    version = f'"version": "{live["version"].pk}", ' if path == "/v1/predictions" else ""
    return "{" + version + '"input": ' + input_json + extra + "}"


def assert_refused(response: httpx.Response, status: int, field: str | None = None) -> Any:
    assert response.status_code == status, response.text[:2000]
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status and problem["detail"]
    if field is not None:
        fields = [f["field"] for f in problem.get("invalid_fields", [])]
        assert any(f == field or f.startswith(field + ".") for f in fields), problem
        assert field in problem["detail"]
    return problem


def assert_nothing_stored_and_listings_work(live: dict[str, Any]) -> None:
    client = live["client"]
    assert Prediction.objects.count() == 0
    assert UploadedFile.objects.count() == 0 and StoredFile.objects.count() == 0
    for path in ("/v1/predictions", "/v1/files", "/v1/deployments", "/v1/models"):
        assert client.get(path).status_code == 200, path


UNSTORABLE_OR_DEEP = [
    (DEEP, "", "body"),
    ('{"text": ' + "[" * 70 + "]" * 70 + "}", "", "input.text"),
    ('{"text": ' + SURROGATE + "}", "", "input.text"),
    ('{"text": "ok \\udfff ok"}', "", "input.text"),
    ('{"\\ud800": "x"}', "", "input"),
    ('{"text": "nul \\u0000"}', "", "input.text"),
    ('{"text": "x"}', ', "webhook": "https://example.com/\\ud800"', "webhook"),
    (
        '{"text": "x"}',
        ', "webhook_events_filter": [' + SURROGATE + "]",
        "webhook_events_filter.0",
    ),
    ('{"text": "x"}', ', "lifetime": ' + SURROGATE, "lifetime"),
    ('{"text": "x"}', ', "stream": {"a": ' + SURROGATE + "}", "stream.a"),
]


def test_unstorable_or_too_deep_json_is_a_400_naming_the_field(live: dict[str, Any]) -> None:
    # One server for every case (starting one per case took minutes).
    for path in CREATES:
        for input_json, extra, field in UNSTORABLE_OR_DEEP:
            response = live["client"].post(
                path,
                content=body(live, path, input_json, extra),
                headers={"Content-Type": "application/json"},
            )
            assert_refused(response, 400, field)
            assert_nothing_stored_and_listings_work(live)


TOO_LONG = [
    ("99999999999h", None),
    (None, "99999999999h"),
    ("9" * 5000, None),
    ("8d", None),
    (None, "1" + "0" * 30),
    (None, "604801s"),
]


def test_lifetimes_beyond_the_setting_are_a_clear_400(live: dict[str, Any]) -> None:
    for path in CREATES:
        for header, lifetime in TOO_LONG:
            extra = f', "lifetime": "{lifetime}"' if lifetime else ""
            headers = {"Content-Type": "application/json"}
            if header:
                headers["Cancel-After"] = header
            response = live["client"].post(
                path, content=body(live, path, '{"text": "x"}', extra), headers=headers
            )
            problem = assert_refused(response, 400)
            assert "Cancel-After" in problem["title"] or "lifetime" in problem["title"]
            assert_nothing_stored_and_listings_work(live)


def test_the_longest_allowed_lifetime_is_accepted(live: dict[str, Any]) -> None:
    response = live["client"].post(
        "/v1/predictions",
        json={"version": live["version"].pk, "input": {"text": "x"}},
        headers={"Cancel-After": "168h"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["deadline"]


def test_oversized_bodies_are_413_problem_documents(live: dict[str, Any]) -> None:
    padding = json.dumps({"text": "x" * (50 * 1024**2)})
    for path in CREATES:
        response = live["client"].post(
            path, content=body(live, path, padding), headers={"Content-Type": "application/json"}
        )
        assert_refused(response, 413)
        assert_nothing_stored_and_listings_work(live)


def test_an_oversized_metadata_field_is_413_through_djangos_own_limit(
    live: dict[str, Any],
) -> None:
    # Django's DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB) guards non-file multipart fields.
    metadata = json.dumps({"k": "x" * (3 * 1024**2)})
    response = live["client"].post(
        "/v1/files", files={"content": ("a.txt", b"abc")}, data={"metadata": metadata}
    )
    assert_refused(response, 413)
    assert_nothing_stored_and_listings_work(live)


BAD_METADATA = [
    ('{"k": ' + SURROGATE + "}", "metadata.k"),
    ('{"k": "\\u0000"}', "metadata.k"),
    ("[" * 10_000 + "]" * 10_000, "metadata"),
]


def test_file_metadata_is_checked_at_the_door(live: dict[str, Any]) -> None:
    client = live["client"]
    for metadata, field in BAD_METADATA:
        # Python's client sends metadata as a form field, the JS client as a JSON blob part.
        as_field = client.post(
            "/v1/files", files={"content": ("a.txt", b"abc")}, data={"metadata": metadata}
        )
        assert_refused(as_field, 400, field)
        as_blob = client.post(
            "/v1/files",
            files={
                "content": ("a.txt", b"abc"),
                "metadata": ("blob", metadata.encode(), "application/json"),
            },
        )
        assert_refused(as_blob, 400, field)
        assert_nothing_stored_and_listings_work(live)


def test_100k_unknown_input_keys_list_the_first_20_and_count_them(live: dict[str, Any]) -> None:
    keys = {f"unknown_{i}": 1 for i in range(100_000)}
    response = live["client"].post(
        "/v1/predictions", json={"version": live["version"].pk, "input": {"text": "x", **keys}}
    )
    problem = assert_refused(response, 422)
    assert len(problem["invalid_fields"]) == 20
    assert problem["invalid_fields_count"] == 100_000
    assert problem["detail"].count("\n") == 21 and "and 99980 more" in problem["detail"]
    assert len(response.content) < 10_000
    assert_nothing_stored_and_listings_work(live)


def test_search_text_is_checked_at_the_door(live: dict[str, Any]) -> None:
    client = live["client"]
    for text in (SURROGATE, "[" * 10_000, '"nul \\u0000"'):
        response = client.request(
            "QUERY", "/v1/models", content=text, headers={"Content-Type": "text/plain"}
        )
        assert response.status_code == 400 or response.status_code == 200, response.text
        assert response.status_code < 500
    refused = client.request(
        "QUERY", "/v1/models", content=SURROGATE, headers={"Content-Type": "application/json"}
    )
    assert_refused(refused, 400, "query")
