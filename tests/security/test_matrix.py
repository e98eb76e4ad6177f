"""The access matrix, walked from the URL resolver so that a new endpoint cannot be forgotten.

Every ``/v1`` operation of the OpenAPI document (and every ``/v1`` route, documented or not) and
every page of the site is requested as the owner, an outsider and an anonymous caller, with the
owner's private model, prediction, webhook delivery, file and token in the URL. Outsiders get 404
for private things and change nothing; anonymous API callers get 401; and no response to an
outsider or anonymous caller contains any of the owner's private identifiers. The rows for an
organisation's members by role (owner, member, read-only) are in tests/orgs/test_matrix.py.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from marketplace.accounts.models import Account, ApiToken, Invitation, Membership
from marketplace.catalog.models import Collection, Model
from marketplace.deployments.models import Deployment
from marketplace.predictions import webhooks
from marketplace.predictions.models import Prediction
from marketplace.predictions.services import prediction_create
from marketplace.predictions.uploads import UploadedFile
from marketplace.predictions.webhooks import WebhookDelivery
from tests.factories import UserFactory, private, publish, token_for

pytestmark = pytest.mark.django_db(transaction=True)

TRAINABLE = Path(__file__).resolve().parents[1] / "fixtures" / "cog" / "trainable"

# Routes outside the access matrix, and why.
NOT_IN_MATRIX = {
    # Capability URLs: the unguessable token in the path is the permission (tested in
    # tests/api/test_streams.py and tests/api/test_files.py).
    "/v1/streams/{stream_token}",
    "/v1/files/{file_id}/download/{name}",
    "/files/{name}",
    # Public by design: the API's own description.
    "/v1/openapi.json",
    "/v1/docs",
    # Machine endpoints with their own authentication (tests/registry, tests/billing).
    "/registry/token",
    "/registry/events",
    "/billing/stripe/webhook/",
}


@dataclass
class World:
    owner_api: APIClient
    outsider_api: APIClient
    owner_web: Client
    outsider_web: Client
    values: dict[str, str]
    secrets: list[str]


@pytest.fixture
def world(user: Any, outsider: Any, client: Client) -> World:
    # Trainable, so that its Train tab and a training of it are in the matrix too.
    version = private(publish(user, TRAINABLE, name="hidden-gem-7q"))
    model = version.model
    Model.objects.filter(pk=model.pk).update(readme="# Private notes")  # for /readme
    # A public collection that lists the private model must not show it to others.
    Collection.objects.create(slug="picks", name="Picks").members.add(model)
    # A deployment of it, under the model's name (so {owner}/{name} reaches both).
    Deployment.objects.create(
        owner=user.account,
        name=model.name,
        model=model,
        version=version,
        hardware=model.default_hardware,
    )
    # An organisation she owns, with an invitation to someone else.
    org = Account.objects.create(username="hush-org", type=Account.Type.ORGANIZATION)
    Membership.objects.create(account=org, user=user, role=Membership.Role.OWNER)
    invitation = Invitation.objects.create(
        account=org, user=UserFactory(username="carol9"), invited_by=user
    )
    prediction = prediction_create(
        version=version,
        input={"name": "private words"},
        account=user.account,
        created_by=user,
        webhook="http://127.0.0.1:9/hook",
    )
    delivery = webhooks.notify(prediction.id, webhooks.START)
    assert delivery is not None
    # A training of it, into another private model of hers.
    training = prediction_create(
        version=version,
        input={"phrase": "private words"},
        account=user.account,
        created_by=user,
        destination="alice/tuned-gem-5w",
    )
    owner_api = APIClient()
    owner_api.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(user)}")
    upload = owner_api.post(
        "/v1/files", {"content": _file(b"private bytes")}, format="multipart"
    ).json()
    token = ApiToken.objects.filter(user=user).first()
    assert token is not None
    outsider_api = APIClient()
    outsider_api.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(outsider)}")
    owner_web, outsider_web = Client(), Client()
    owner_web.force_login(user)
    outsider_web.force_login(outsider)
    values = {
        "owner": user.username,
        "username": user.username,
        "name": model.name,
        "version_id": version.id,
        "prediction_id": prediction.id,
        "training_id": training.id,
        "message_id": delivery.message_id,
        "file_id": upload["id"],
        "slug": "picks",
        "token_id": str(token.pk),
        "org": org.username,
        "invitation_id": str(invitation.pk),
        "answer": "accept",
    }
    secrets = [
        model.name,
        version.id,
        prediction.id,
        training.id,
        "tuned-gem-5w",
        delivery.message_id,
        upload["id"],
        user.account.webhook_secret,
        "private words",
    ]
    return World(owner_api, outsider_api, owner_web, outsider_web, values, secrets)


def _file(data: bytes) -> Any:
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("p.txt", data, content_type="text/plain")


def _routes(resolvers: list[Any], prefix: str = "") -> list[str]:
    """Every route of the URLconf as a template (``/v1/predictions/{prediction_id}``)."""
    out: list[str] = []
    for entry in resolvers:
        route = getattr(entry.pattern, "_route", None)
        if route is None:  # a regex pattern: the admin and django-rq (Django's own checks)
            continue
        template = prefix + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)
        if isinstance(entry, URLResolver):
            out.extend(_routes(entry.url_patterns, template))
        elif isinstance(entry, URLPattern):
            out.append("/" + template)
    return out


def _fill(template: str, values: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], template)


def _operations(api: APIClient) -> list[tuple[str, str]]:
    document = api.get("/v1/openapi.json", HTTP_ACCEPT="application/json").json()
    return [
        (path, method)
        for path, ops in document["paths"].items()
        for method in ops
        if method in ("get", "post", "put", "patch", "delete")
    ]


# Operations an anonymous caller may make (and what they show).
ANONYMOUS_OK = {("/v1/search", "get"), ("/v1/files/{file_id}/download", "get")}
# Operations that act on the caller's own things whatever the URL (no owner's object in it).
OWN_SCOPE = {
    "/v1/account",
    "/v1/billing",
    "/v1/billing/quote",
    "/v1/collections",
    "/v1/files",
    "/v1/hardware",
    "/v1/models",
    "/v1/predictions",
    "/v1/trainings",
    "/v1/search",
    "/v1/webhooks/default/secret",
    "/v1/collections/{slug}",
    "/v1/audit",
    "/v1/deployments",
}
# Query strings that make an operation look at the owner's things.
QUERIES = {
    "/v1/search": "?query=hidden-gem",
    "/v1/billing/quote": "?version=alice/hidden-gem-7q",
    "/v1/earnings": "?account=alice",
}
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("/v1/models/{owner}/{name}/predictions", "post"): {"input": {"text": "x"}},
    ("/v1/models/{owner}/{name}", "patch"): {"description": "defaced", "visibility": "public"},
    ("/v1/predictions", "post"): {"input": {"text": "x"}},
    ("/v1/models/{owner}/{name}/versions/{version_id}/trainings", "post"): {
        "destination": "mallory/squat",
        "input": {"phrase": "x"},
    },
    ("/v1/models", "post"): {"owner": "alice", "name": "squat", "visibility": "public"},
}


def test_every_v1_route_is_in_the_openapi_document_or_explained(world: World) -> None:
    documented = {path for path, _ in _operations(world.owner_api)}
    routes = {r for r in _routes(get_resolver().url_patterns) if r.startswith("/v1/")}
    assert routes - documented <= NOT_IN_MATRIX, routes - documented - NOT_IN_MATRIX


def _call(client: Any, method: str, url: str, body: dict[str, Any] | None) -> Any:
    call = getattr(client, method)
    return call(url, body, format="json") if body is not None else call(url)


def _leaks(response: Any, secrets: list[str]) -> list[str]:
    content = getattr(response, "content", b"") or b""
    if not content and hasattr(response, "streaming_content"):
        return []  # a file download; the matrix checks its status
    text = content.decode(errors="replace")
    return [s for s in secrets if s in text]


def test_api_matrix_owner_outsider_anonymous(world: World) -> None:
    failures: list[str] = []
    before = _snapshot()
    for path, method in _operations(world.owner_api):
        url = _fill(path, world.values) + QUERIES.get(path, "")
        body = BODIES.get((path, method), {} if method in ("post", "patch", "put") else None)
        # Anonymous: 401, except the few public operations, which show nothing private.
        anonymous = _call(APIClient(), method, url, body)
        expected_anon = {200, 404} if (path, method) in ANONYMOUS_OK else {401}
        if anonymous.status_code not in expected_anon:
            failures.append(f"anonymous {method.upper()} {path}: {anonymous.status_code}")
        if leaked := _leaks(anonymous, world.secrets):
            failures.append(f"anonymous {method.upper()} {path} shows {leaked}")
        # Outsider: 404 for anything naming the owner's things; never a private identifier.
        outsider = _call(world.outsider_api, method, url, body)
        if path not in OWN_SCOPE and outsider.status_code != 404:
            failures.append(f"outsider {method.upper()} {path}: {outsider.status_code}")
        if path in OWN_SCOPE and outsider.status_code >= 500:
            failures.append(f"outsider {method.upper()} {path}: {outsider.status_code}")
        if leaked := _leaks(outsider, world.secrets):
            failures.append(f"outsider {method.upper()} {path} shows {leaked}")
        # Owner: every read of her own things works (so the 404s above are not typos).
        if method == "get":
            owner = world.owner_api.get(url)
            if owner.status_code != 200:
                failures.append(f"owner GET {path}: {owner.status_code}")
    assert not failures, "\n".join(failures)
    assert _snapshot() == before, "an outsider or anonymous request changed something"


def _snapshot() -> dict[str, Any]:
    model = Model.objects.get(name="hidden-gem-7q")
    return {
        "model": (
            model.visibility,
            model.description,
            model.deleted_at if hasattr(model, "deleted_at") else None,
        ),
        "versions": list(model.versions.values_list("pk", "hidden")),
        "models": sorted(Model.objects.values_list("owner__username", "name")),
        "predictions": sorted(Prediction.objects.values_list("pk", "status")),
        "files": sorted(UploadedFile.objects.values_list("pk", flat=True)),
        "deliveries": sorted(WebhookDelivery.objects.values_list("pk", "status", "attempt_count")),
        "tokens": sorted(ApiToken.objects.values_list("pk", flat=True)),
    }


# Pages that are about the viewer's own account (every signed-in user has one).
OWN_PAGES = {
    "/",
    "/search",
    "/collections",
    "/collections/{slug}",
    "/new",
    "/account/signup",
    "/account/login",
    "/account/logout",
    "/account/password-reset",
    "/account/password-reset/sent",
    "/account/password-reset/{uidb64}/{token}",
    "/account/password-reset/done",
    "/account/tokens",
    "/account/predictions",
    "/billing/",
    "/billing/usage.csv",
    "/billing/card",
    "/billing/credits",
    "/billing/portal",
    "/billing/caps",
    "/billing/earnings/",
    "/billing/earnings/connect",
    "/billing/earnings/connect/refresh",
    "/billing/earnings/dashboard",
    "/billing/earnings/statement.csv",
    "/{username}",
    # Public like profiles: an account's initial (avatar_url in the API).
    "/avatars/{username}.svg",
    "/ops/hosts/",
    "/account/audit",
    "/account/organizations",
    "/account/invitations",
    # A signed claim link: the signature is the permission (tests/orgs).
    "/account/invitations/claim/{token}",
    "/deployments",
    "/deployments/new",
}


def _site_routes() -> list[str]:
    return [
        r
        for r in _routes(get_resolver().url_patterns)
        if not r.startswith(("/v1/", "/admin/")) and r not in NOT_IN_MATRIX
    ]


def test_site_matrix_owner_outsider_anonymous(world: World) -> None:
    values = {**world.values, "uidb64": "MQ", "token": "x-y"}
    failures: list[str] = []
    before = _snapshot()
    for route in _site_routes():
        url = _fill(route, values)
        for who, client in (("outsider", world.outsider_web), ("anonymous", Client())):
            for method in ("get", "post"):
                response = getattr(client, method)(url)
                status = response.status_code
                if status >= 500:
                    failures.append(f"{who} {method.upper()} {route}: {status}")
                if route not in OWN_PAGES and status not in (302, 404, 405):
                    failures.append(f"{who} {method.upper()} {route}: {status}")
                redirect = response.get("Location", "")
                if status == 302 and route not in OWN_PAGES and "/account/login" not in redirect:
                    failures.append(f"{who} {method.upper()} {route} → {redirect}")
                if leaked := _leaks(response, world.secrets):
                    failures.append(f"{who} {method.upper()} {route} shows {leaked}")
        if route not in OWN_PAGES and "{" in route:
            owner = world.owner_web.get(url)
            if owner.status_code not in (200, 405):
                failures.append(f"owner GET {route}: {owner.status_code}")
    assert not failures, "\n".join(failures)
    assert _snapshot() == before


def test_csrf_is_enforced_on_every_post_of_the_site(world: World, user: Any) -> None:
    """Every non-API route refuses a cookie-authenticated POST without the CSRF token (the
    middleware answers before the view, so this holds for GET-only views too); the API takes
    tokens only, never the session cookie, so CSRF does not apply there."""
    values = {**world.values, "uidb64": "MQ", "token": "x-y"}
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    failures = []
    for route in _site_routes():
        response = client.post(_fill(route, values), {"name": "x"})
        if response.status_code != 403 or b"CSRF" not in response.content:
            failures.append(f"POST {route}: {response.status_code}")
    assert not failures, "\n".join(failures)
    # The same form with its token goes through: the 403s above are the CSRF check.
    page = client.get("/account/tokens")
    token = page.cookies["csrftoken"].value
    made = client.post("/account/tokens", {"name": "ci", "csrfmiddlewaretoken": token})
    assert made.status_code in (200, 302)
    # A signed-in browser cannot use the API with its cookie (so cross-site API calls fail).
    api_with_cookie = client.post(
        "/v1/predictions",
        {"version": world.values["version_id"], "input": {"text": "x"}},
        content_type="application/json",
    )
    assert api_with_cookie.status_code == 401


# The MCP endpoint (/mcp, beside Django in the ASGI application): each tool with arguments that
# name the owner's private things, and what an outsider gets (the API's status, as a tool error).
MCP_ARGS: dict[str, dict[str, Any]] = {
    "search_models": {"query": "hidden-gem"},
    "get_model": {"model": "alice/hidden-gem-7q"},
    "run_model": {"model": "alice/hidden-gem-7q", "input": {"text": "x"}, "wait": 1},
    "create_prediction": {"model": "alice/hidden-gem-7q", "input": {"text": "x"}},
    "get_prediction": {"id": "{prediction_id}"},
    "list_predictions": {},
    "cancel_prediction": {"id": "{prediction_id}"},
    "list_hardware": {},
    # Neither content nor URL: refused before anything is stored, for everyone.
    "upload_file": {"filename": "x.txt"},
}
MCP_OUTSIDER_STATUS = {
    "get_model": 404,
    "get_prediction": 404,
    "cancel_prediction": 404,
    # As POST /v1/predictions answers for a version the caller may not run.
    "run_model": 422,
    "create_prediction": 422,
}


def _mcp_calls(token: str | None, values: dict[str, str]) -> dict[str, Any]:
    """Every tool (as the server lists them) and the private model's resource, called in-process
    through the SDK's client; or, without a token, the raw HTTP answers."""
    import asyncio

    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared.exceptions import MCPError

    from marketplace.asgi import application

    async def go() -> dict[str, Any]:
        transport = httpx2.ASGITransport(app=application)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with httpx2.AsyncClient(
            transport=transport, base_url="http://testserver", headers=headers
        ) as http:
            if token is None:
                return {
                    method: await http.request(method, "/mcp", json={})
                    for method in ("GET", "POST", "DELETE")
                }
            out: dict[str, Any] = {}
            url = "http://testserver/mcp"
            async with Client(streamable_http_client(url, http_client=http)) as client:
                listed = await client.list_tools()
                out["tools"] = [t.name for t in listed.tools]
                for name in out["tools"]:
                    args = json.loads(_fill(json.dumps(MCP_ARGS[name]), values))
                    out[name] = await client.call_tool(name, args)
                out["resources"] = await client.list_resources()
                try:
                    out["read"] = await client.read_resource("model://alice/hidden-gem-7q")
                except MCPError as exc:
                    out["read"] = exc
            return out

    return asyncio.run(go())


def test_mcp_matrix_owner_outsider_anonymous(world: World, user: Any, outsider: Any) -> None:
    outsider_token, owner_token = token_for(outsider), token_for(user)
    before = _snapshot()
    anonymous = _mcp_calls(None, world.values)
    assert {m: r.status_code for m, r in anonymous.items()} == {
        "GET": 401,
        "POST": 401,
        "DELETE": 401,
    }
    stranger = _mcp_calls(outsider_token, world.values)
    assert set(stranger["tools"]) == set(MCP_ARGS), "a new tool needs its row in MCP_ARGS"
    failures = []
    for name in stranger["tools"]:
        result = stranger[name]
        expected = MCP_OUTSIDER_STATUS.get(name)
        status = (result.structured_content or {}).get("status") if result.is_error else 200
        if expected is not None and status != expected:
            failures.append(f"outsider {name}: {status}")
        if expected is None and status >= 500:
            failures.append(f"outsider {name}: {status}")
        text = json.dumps(result.model_dump(mode="json"))
        if leaked := [s for s in world.secrets if s in text]:
            failures.append(f"outsider {name} shows {leaked}")
    listed = json.dumps(stranger["resources"].model_dump(mode="json"))
    if leaked := [s for s in world.secrets if s in listed]:
        failures.append(f"outsider resources/list shows {leaked}")
    if getattr(stranger["read"], "code", None) != -32002:
        failures.append(f"outsider resources/read: {stranger['read']!r}")
    assert not failures, "\n".join(failures)
    assert _snapshot() == before, "an outsider or anonymous MCP call changed something"
    # The owner reads her own things through the same calls (so the refusals above are real).
    owner = _mcp_calls(owner_token, world.values)
    for name in ("get_model", "get_prediction"):
        assert not owner[name].is_error, owner[name]
    assert owner["read"].contents[0].uri == "model://alice/hidden-gem-7q"
    assert "model://alice/hidden-gem-7q" in {r.uri for r in owner["resources"].resources}
