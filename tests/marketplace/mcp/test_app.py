"""The MCP endpoint's own checks, in process (``marketplace.asgi`` through an ASGI transport, the
SDK's client on top): the host and origin, the methods, a token's account and role, the rate
limit. What needs a model to run is in test_endpoint.py, against a live stack."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from marketplace.accounts.models import Account, ApiToken, Membership
from marketplace.asgi import application
from marketplace.predictions.models import Prediction
from marketplace.predictions.uploads import UploadedFile
from tests.factories import UserFactory, private, publish, token_for

pytestmark = pytest.mark.django_db(transaction=True)
T = TypeVar("T")


def http(**headers: str) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=application),
        base_url="http://testserver",
        headers=headers,
    )


def mcp(token: str, work: Callable[[Client], Awaitable[T]]) -> T:
    async def go() -> T:
        async with (
            http(Authorization=f"Bearer {token}") as client,
            Client(streamable_http_client("http://testserver/mcp", http_client=client)) as mcp,
        ):
            return await work(mcp)

    return asyncio.run(go())


def raw(method: str, **headers: str) -> httpx2.Response:
    async def go() -> httpx2.Response:
        async with http(**headers) as client:
            return await client.request(method, "/mcp", json={})

    return asyncio.run(go())


def test_only_post_from_an_allowed_host_and_origin(user: Any) -> None:
    bearer = f"Bearer {token_for(user)}"
    assert raw("GET", Authorization=bearer).status_code == 405
    assert raw("DELETE", Authorization=bearer).headers["allow"] == "POST"
    assert raw("POST", Authorization=bearer, Host="evil.example").status_code == 400
    refused = raw("POST", Authorization=bearer, Origin="https://evil.example")
    assert refused.status_code == 403
    assert refused.json()["error"]["message"] == "Origin not allowed"
    # Anything but /mcp is Django's, as before.
    assert raw("POST").status_code == 401
    assert asyncio.run(_get("/v1/hardware")).status_code == 401


async def _get(path: str) -> httpx2.Response:
    async with http() as client:
        return await client.get(path)


def test_a_token_sees_and_acts_for_its_own_account_only(user: Any) -> None:
    mine = private(publish(user, "hello", name="mine-7x")).model
    org = Account.objects.create(username="acme", type=Account.Type.ORGANIZATION)
    Membership.objects.create(account=org, user=user, role=Membership.Role.READ_ONLY)
    theirs = private(
        publish(UserFactory(username="acme-owner"), "text-stream", name="theirs-7x")
    ).model
    theirs.owner = org
    theirs.save()
    org_token = ApiToken.create_for(user, account=org)[1]

    async def work(client: Client) -> Any:
        found = await client.call_tool("search_models", {"query": "7x"})
        run = await client.call_tool(
            "create_prediction", {"model": "acme/theirs-7x", "input": {"text": "x"}}
        )
        listed = await client.list_resources()
        return found, run, listed

    found, run, listed = mcp(org_token, work)
    assert [m["model"] for m in found.structured_content["models"]] == ["acme/theirs-7x"]
    # A read-only member's token (with write permission) may not run the organisation's models.
    assert run.is_error
    assert run.structured_content["detail"] == (
        "Your role in acme is read-only: you cannot change its resources"
    )
    uris = {r.uri for r in listed.resources}
    assert "model://acme/theirs-7x" in uris and f"model://alice/{mine.name}" not in uris
    assert not Prediction.objects.exists()


def test_tool_calls_count_against_the_api_rate_limit(user: Any, settings: Any) -> None:
    settings.API_RATE_LIMIT = 2
    token = token_for(user)

    async def work(client: Client) -> list[types.CallToolResult]:
        return [await client.call_tool("list_hardware", {}) for _ in range(3)]

    first, second, third = mcp(token, work)
    assert not first.is_error and not second.is_error
    assert third.is_error
    assert third.structured_content["status"] == 429
    assert third.structured_content["detail"].startswith("Request was throttled. Expected")


class _Files(BaseHTTPRequestHandler):
    """A loopback file server (tests allow loopback URLs: OUTBOUND_ALLOW_CIDRS)."""

    def do_GET(self) -> None:
        if self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "/file.txt")
            self.end_headers()
            return
        body = b"x" * (4096 if self.path == "/big.txt" else 5)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_upload_file_fetches_a_url_through_the_outbound_guard(user: Any, settings: Any) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    settings.FILES_MAX_BYTES = 1000

    async def work(client: Client) -> list[types.CallToolResult]:
        return [
            await client.call_tool("upload_file", {"filename": "f.txt", "url": f"{base}{path}"})
            for path in ("/file.txt", "/moved", "/big.txt")
        ]

    try:
        fetched, moved, big = mcp(token_for(user), work)
    finally:
        server.shutdown()
    assert not fetched.is_error
    assert fetched.structured_content["size"] == 5
    assert fetched.structured_content["content_type"] == "text/plain"
    assert UploadedFile.objects.get().account == user.account
    assert moved.is_error and "redirects are not followed" in moved.structured_content["detail"]
    assert big.is_error and big.structured_content["status"] == 413


def test_an_iterator_of_text_reads_as_one_text(user: Any) -> None:
    version = publish(user, "text-stream")
    prediction = Prediction.objects.create(
        model=version.model,
        version=version,
        account=user.account,
        hardware=version.model.default_hardware,
        status=Prediction.Status.SUCCEEDED,
        input={"prompt": "the"},
        output=["the ", "cat ", "sat"],
    )
    result = mcp(token_for(user), lambda c: c.call_tool("get_prediction", {"id": prediction.id}))
    texts = [c.text for c in result.content if isinstance(c, types.TextContent)]
    assert texts[1] == "the cat sat"
    assert result.structured_content["output"] == ["the ", "cat ", "sat"]
