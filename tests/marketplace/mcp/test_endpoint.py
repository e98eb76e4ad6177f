"""The MCP endpoint, driven by the official SDK's own client over Streamable HTTP against a live
stack: uvicorn serving ``marketplace.asgi`` (with ``--lifespan off``, as the other live tests
run it) and a host agent running the demo models' real Cog servers. One stack serves the whole
module, so the Cog servers boot once; the tests talk to it over HTTP only."""

from __future__ import annotations

import asyncio
import base64
import io
import re
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import httpx
import httpx2
import mcp_types as types
import pytest
from django.conf import settings
from django.core.management import call_command
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from PIL import Image

from marketplace.accounts.models import ApiToken
from marketplace.billing.services import billing_for
from marketplace.catalog.models import Model
from marketplace.catalog.services import version_publish_local
from marketplace.redisconn import get_redis
from tests.conftest import BASE_DIR, AgentProcess, LiveWeb, child_env
from tests.factories import UserFactory, cpu
from workers.runtimes.base import free_port

# The tests touch the database only through the stack; the marker makes pytest-django set up the
# test database (each test's transaction on this process's connection stays empty).
pytestmark = pytest.mark.django_db

T = TypeVar("T")
DEMOS = ("hello", "image-filter", "slow-progress")
TOOLS = {
    "search_models",
    "get_model",
    "run_model",
    "create_prediction",
    "get_prediction",
    "list_predictions",
    "cancel_prediction",
    "list_hardware",
    "upload_file",
}


@dataclass
class Stack:
    url: str
    token: str
    read_token: str
    capped_token: str
    schemas: dict[str, dict[str, Any]]


@pytest.fixture(autouse=True)
def clean_redis() -> Iterator[None]:
    """The stack's Redis lives for the whole module (the suite's own empties it per test)."""
    yield


@pytest.fixture(scope="module")
def stack(
    django_db_setup: None, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    logs = tmp_path_factory.mktemp("mcp-stack")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    public_url = settings.PUBLIC_URL
    settings.PUBLIC_URL = url
    processes: list[Any] = []
    with django_db_blocker.unblock():
        get_redis().flushdb()
        cpu()
        demo = UserFactory(username="demo")
        schemas = {}
        for name in DEMOS:
            version, _ = version_publish_local(
                path=BASE_DIR / "examples" / name,
                owner=demo.account,
                name=name,
                visibility=Model.Visibility.PUBLIC,
            )
            schemas[name] = version.schema["components"]["schemas"]
        alice = UserFactory(username="alice")
        token = ApiToken.create_for(alice)[1]
        read_token = ApiToken.create_for(alice, name="reader", permission="read")[1]
        carl = UserFactory(username="carl")
        billing = billing_for(carl.account)
        billing.monthly_cap = Decimal("0.01")
        billing.save()
        capped_token = ApiToken.create_for(carl)[1]
        try:
            argv = [
                *(sys.executable, "-m", "uvicorn", "marketplace.asgi:application"),
                *("--host", "127.0.0.1", "--port", str(port), "--no-access-log"),
                *("--lifespan", "off"),
            ]
            # The web process refuses loopback URLs, as production does (the suite allows them
            # for its test receivers); the model servers still reach the platform's own files.
            env = child_env(PUBLIC_URL=url, OUTBOUND_ALLOW_CIDRS="")
            web = LiveWeb(f"web-{port}", argv, Path(logs), env)
            web.url = url
            processes.append(web)
            web.start().wait_ready()
            agent = AgentProcess(
                Path(logs),
                idle_timeout=120,
                max_instances=len(DEMOS),
                host_name=f"mcp-{uuid.uuid4().hex[:6]}",
                env={"PUBLIC_URL": url},
            )
            processes.append(agent)
            agent.start()
            yield Stack(url, token, read_token, capped_token, schemas)
        finally:
            for process in reversed(processes):
                process.stop()
            settings.PUBLIC_URL = public_url
            get_redis().flushdb()
            call_command("flush", interactive=False, verbosity=0)


def session(stack: Stack, token: str, work: Callable[[Client], Awaitable[T]]) -> T:
    """Run ``work`` with the SDK's client connected to ``/mcp`` with ``token``."""

    async def go() -> T:
        headers = {"Authorization": f"Bearer {token}"}
        async with (
            httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(120)) as http,
            Client(streamable_http_client(f"{stack.url}/mcp", http_client=http)) as client,
        ):
            return await work(client)

    return asyncio.run(go())


def texts(result: types.CallToolResult) -> list[str]:
    return [c.text for c in result.content if isinstance(c, types.TextContent)]


def png() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (600, 400), (200, 30, 30)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_lists_tools_searches_and_reads_models(stack: Stack) -> None:
    async def work(client: Client) -> Any:
        listed = await client.list_tools()
        found = await client.call_tool("search_models", {"query": "hello"})
        model = await client.call_tool("get_model", {"model": "demo/hello"})
        resources = await client.list_resources()
        read = await client.read_resource("model://demo/image-filter")
        hardware = await client.call_tool("list_hardware", {})
        return listed, found, model, resources, read, hardware

    listed, found, model, resources, read, hardware = session(stack, stack.token, work)
    assert {t.name for t in listed.tools} == TOOLS
    for tool in listed.tools:
        assert tool.input_schema["type"] == "object"
        assert tool.input_schema["additionalProperties"] is False
    assert not found.is_error
    assert found.structured_content["models"][0]["model"] == "demo/hello"
    # The model's schema passes through exactly as the model declares it, with its price.
    assert model.structured_content["input_schema"] == stack.schemas["hello"]["Input"]
    assert model.structured_content["output_schema"] == stack.schemas["hello"]["Output"]
    assert model.structured_content["quote"]["pricing"] == "per_second"
    assert {r.uri for r in resources.resources} >= {f"model://demo/{n}" for n in DEMOS}
    markdown, schema = read.contents
    assert markdown.mime_type == "text/markdown" and schema.mime_type == "application/json"
    assert '"input_schema"' in schema.text and "image" in schema.text
    assert hardware.structured_content["hardware"][0]["sku"] == "cpu"


def test_runs_demo_hello(stack: Stack) -> None:
    result = session(
        stack,
        stack.token,
        lambda c: c.call_tool("run_model", {"model": "demo/hello", "input": {"text": "mcp"}}),
    )
    assert not result.is_error, texts(result)
    assert result.structured_content["status"] == "succeeded"
    assert "hello mcp" in texts(result)


def test_runs_the_image_model_on_an_uploaded_file_and_sees_the_image(stack: Stack) -> None:
    async def work(client: Client) -> Any:
        upload = await client.call_tool(
            "upload_file", {"filename": "red.png", "content_base64": png()}
        )
        assert not upload.is_error, texts(upload)
        file_url = upload.structured_content["urls"]["get"]
        run = await client.call_tool(
            "run_model",
            {
                "model": "demo/image-filter",
                "input": {"image": file_url, "filter": "invert", "size": 400},
            },
        )
        refused = await client.call_tool(
            "upload_file", {"filename": "x.png", "url": "http://127.0.0.1:9/x.png"}
        )
        return run, refused

    run, refused = session(stack, stack.token, work)
    assert not run.is_error, texts(run)
    images = [c for c in run.content if isinstance(c, types.ImageContent)]
    assert len(images) == 1 and images[0].mime_type == "image/jpeg"
    thumbnail = Image.open(io.BytesIO(base64.b64decode(images[0].data)))
    assert max(thumbnail.size) <= 256
    assert thumbnail.getpixel((0, 0))[0] < 100  # inverted red
    # The original's signed URL comes along, and serves the full-size image.
    output_url = run.structured_content["output"]
    assert output_url.startswith(f"{stack.url}/files/outputs/") and "signature=" in output_url
    assert output_url in "\n".join(texts(run))
    full = Image.open(io.BytesIO(httpx.get(output_url, timeout=10).content))
    assert full.size == (400, 267)
    # A URL to fetch goes through the outbound guard: loopback is refused, naming the field.
    assert refused.is_error
    assert refused.structured_content["status"] == 400
    assert refused.structured_content["invalid_fields"][0]["field"] == "url"
    assert "internal address" in refused.structured_content["detail"]


def test_a_long_run_answers_with_its_id_and_is_canceled(stack: Stack) -> None:
    async def work(client: Client) -> Any:
        run = await client.call_tool(
            "run_model",
            {"model": "demo/slow-progress", "input": {"steps": 60, "step_seconds": 0.5}, "wait": 2},
        )
        prediction_id = run.structured_content["id"]
        for _ in range(600):
            got = await client.call_tool("get_prediction", {"id": prediction_id})
            if got.structured_content["status"] == "processing":
                break
            await asyncio.sleep(0.1)
        canceled = await client.call_tool("cancel_prediction", {"id": prediction_id})
        for _ in range(600):
            got = await client.call_tool("get_prediction", {"id": prediction_id})
            if got.structured_content["status"] == "canceled":
                break
            await asyncio.sleep(0.1)
        listed = await client.call_tool("list_predictions", {"limit": 5})
        return run, canceled, got, listed

    run, canceled, got, listed = session(stack, stack.token, work)
    assert not run.is_error
    assert run.structured_content["status"] in ("starting", "processing")
    assert run.structured_content["id"] in texts(run)[0]
    assert not canceled.is_error
    assert got.structured_content["status"] == "canceled"
    assert run.structured_content["id"] in [p["id"] for p in listed.structured_content["results"]]


def test_a_read_token_reads_but_is_refused_the_run_tool(stack: Stack) -> None:
    async def work(client: Client) -> Any:
        search = await client.call_tool("search_models", {"query": "hello"})
        run = await client.call_tool("run_model", {"model": "demo/hello", "input": {"text": "no"}})
        return search, run

    search, run = session(stack, stack.read_token, work)
    assert not search.is_error
    assert run.is_error
    assert run.structured_content == {
        "title": "Forbidden",
        "detail": "This token's permission is read: it cannot POST here. "
        "Create a token with write permission.",
        "status": 403,
    }


def _find_mcp_error(exc: BaseException) -> MCPError | None:
    if isinstance(exc, MCPError):
        return exc
    for inner in getattr(exc, "exceptions", ()):
        if (found := _find_mcp_error(inner)) is not None:
            return found
    return None


def test_a_bad_token_gets_an_authentication_error(stack: Stack) -> None:
    with pytest.raises(BaseException) as raised:
        session(stack, "mkt_not-a-token", lambda c: c.list_tools())
    error = _find_mcp_error(raised.value)
    assert error is not None, raised.value
    assert error.message == "You did not pass a valid authentication token"
    plain = httpx.post(f"{stack.url}/mcp", json={}, timeout=10)
    assert plain.status_code == 401
    assert plain.headers["www-authenticate"] == 'Bearer realm="api"'


def test_over_its_cap_a_run_is_a_402_tool_error_in_the_api_words(stack: Stack) -> None:
    result = session(
        stack,
        stack.capped_token,
        lambda c: c.call_tool("run_model", {"model": "demo/hello", "input": {"text": "$"}}),
    )
    api = httpx.post(
        f"{stack.url}/v1/models/demo/hello/predictions",
        headers={"Authorization": f"Bearer {stack.capped_token}"},
        json={"input": {"text": "$"}},
        timeout=10,
    )
    assert api.status_code == 402
    assert result.is_error
    assert result.structured_content == api.json()
    assert re.search(r"exceed your monthly spend cap of \$0\.01", texts(result)[0])


def test_bad_arguments_name_the_field(stack: Stack) -> None:
    result = session(
        stack, stack.token, lambda c: c.call_tool("run_model", {"input": {}, "wait": 99})
    )
    assert result.is_error
    fields = {f["field"] for f in result.structured_content["invalid_fields"]}
    assert fields == {"model", "wait"}
    assert result.structured_content["status"] == 400
