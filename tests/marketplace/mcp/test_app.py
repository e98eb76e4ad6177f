"""The MCP endpoint's own checks, in process (``marketplace.asgi`` through an ASGI transport, the
SDK's client on top): the host and origin, the methods, a token's account and role, the rate
limit. What needs a model to run is in test_endpoint.py, against a live stack."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from marketplace.accounts.models import Account, ApiToken, Membership
from marketplace.asgi import application
from marketplace.predictions.models import Prediction
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
