"""``/mcp``: the MCP endpoint over Streamable HTTP, beside Django in the same ASGI application.

``with_mcp`` wraps Django's ASGI application: requests for ``/mcp`` go to the MCP server, all
else to Django. Before the SDK sees a request this module checks what Django's own stack would:
the ``Host`` (and a browser's ``Origin``) against ``ALLOWED_HOSTS``, and the API token, exactly
as ``/v1`` authenticates it (``hotcache.authenticate``: hashed keys, expiry, the token's account).
A missing or bad token is a 401 whose JSON-RPC error carries the API's wording, so MCP clients
show it.

The SDK runs in its **stateless** mode, with a session manager per request: nothing lives
between requests in a web process, so any web worker or replica may answer any request (no
sticky sessions), and nothing depends on the ASGI lifespan, which some servers do not deliver
(the tests' ``uvicorn --lifespan off`` among them). Answers are JSON, not SSE streams, and only
POST is served (a GET stream would never carry anything; there is no session to DELETE).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections
from django.http.request import split_domain_port, validate_host
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

# DRF's views load its settings, whose parser imports api.errors, which imports DRF's views: this
# module is imported before Django's URLconf (which settles that order), so it settles it here.
from rest_framework import views as _drf_views  # noqa: F401
from starlette.types import ASGIApp, Receive, Scope, Send

from marketplace import hotcache
from marketplace.accounts.models import ApiToken
from marketplace.mcp.server import CALLER, build
from marketplace.mcp.tools import Caller

PATHS = frozenset({"/mcp", "/mcp/"})
UNAUTHENTICATED = "You did not pass a valid authentication token"
# JSON-RPC's range for implementation-defined server errors.
UNAUTHENTICATED_CODE = -32001

_server = build()


def with_mcp(django_app: Any) -> ASGIApp:
    """Django's ASGI application with ``/mcp`` answered by the MCP server."""

    async def application(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in PATHS:
            await mcp_app(scope, receive, send)
        else:
            await django_app(scope, receive, send)

    return application


async def _reply(send: Send, status: int, body: dict[str, Any], **headers: str) -> None:
    raw = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(raw)).encode()),
                *((k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": raw})


def _error(code: int, message: str, status: int, title: str) -> dict[str, Any]:
    """A JSON-RPC error (what MCP clients read) whose data is the API's problem document."""
    problem = {"title": title, "detail": message, "status": status}
    error = {"code": code, "message": message, "data": problem}
    return {"jsonrpc": "2.0", "id": None, "error": error}


def _host_allowed(host: str) -> bool:
    domain, _ = split_domain_port(host)
    return bool(domain) and validate_host(domain, settings.ALLOWED_HOSTS)


def _authenticate(header: str) -> Caller | None:
    keyword, _, key = header.partition(" ")
    if keyword.lower() not in ("bearer", "token") or not key.strip():
        return None
    close_old_connections()
    token = hotcache.authenticate(key.strip())
    if not isinstance(token, ApiToken):
        return None
    return Caller(user=token.user, token=token)


async def mcp_app(scope: Scope, receive: Receive, send: Send) -> None:
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    if not _host_allowed(headers.get("host", "")):
        await _reply(send, 400, _error(-32600, "Invalid Host header", 400, "Bad request"))
        return
    origin = headers.get("origin")
    if origin and not _host_allowed(urlsplit(origin).netloc):
        # A page on another site (or a DNS-rebound name) may not drive the endpoint.
        await _reply(send, 403, _error(-32600, "Origin not allowed", 403, "Forbidden"))
        return
    try:
        caller = await sync_to_async(_authenticate)(headers.get("authorization", ""))
        if caller is None:
            body = _error(UNAUTHENTICATED_CODE, UNAUTHENTICATED, 401, "Unauthenticated")
            await _reply(send, 401, body, www_authenticate='Bearer realm="api"')
        elif scope["method"] != "POST":
            # Stateless: a GET stream would never carry anything; there is no session to DELETE.
            body = _error(-32600, "Send requests with POST", 405, "Method not allowed")
            await _reply(send, 405, body, allow="POST")
        else:
            manager = StreamableHTTPSessionManager(
                app=_server,
                stateless=True,
                json_response=True,
                max_request_body_size=settings.API_MAX_BODY_BYTES,  # as /v1 limits JSON bodies
            )
            async with manager.run():
                await manager.handle_request({**scope, CALLER: caller}, receive, send)
    finally:
        # What Django does when a request ends: the thread's connection goes back to the pool.
        await sync_to_async(close_old_connections)()
