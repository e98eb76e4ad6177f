"""The registry token endpoint: who gets which scope, and tokens distribution 2.8 accepts."""

from __future__ import annotations

import base64
from typing import Any

import jwt
import pytest
from cryptography import x509
from django.test import Client

from marketplace.catalog.models import Model
from marketplace.registry.tokens import ROBOT_USERNAME, notify_secret, robot_password
from tests.factories import UserFactory, cpu, publish, token_for


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def _token(client: Client, auth: str | None, *scopes: str, **params: str) -> Any:
    headers = {"HTTP_AUTHORIZATION": auth} if auth else {}
    query: dict[str, Any] = {"service": "marketplace-registry", **params}
    if scopes:
        query["scope"] = list(scopes)
    return client.get("/registry/token", query, **headers)


def _claims(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.content
    token = response.json()["token"]
    header = jwt.get_unverified_header(token)
    leaf = x509.load_der_x509_certificate(base64.b64decode(header["x5c"][0]))
    return jwt.decode(
        token, leaf.public_key(), algorithms=[header["alg"]], audience="marketplace-registry"
    )


def _access(response: Any) -> dict[str, list[str]]:
    return {f"{a['type']}:{a['name']}": a["actions"] for a in _claims(response)["access"]}


@pytest.mark.django_db
def test_docker_login_with_an_api_token_gets_a_token_with_no_scope(user: Any) -> None:
    response = _token(Client(), _basic("alice", token_for(user)), account="alice")
    claims = _claims(response)
    assert claims["access"] == [] and claims["sub"] == "alice"
    # What distribution 2.8 insists on: a string audience and integer times.
    assert claims["aud"] == "marketplace-registry" and claims["iss"] == "marketplace"
    assert all(isinstance(claims[k], int) for k in ("exp", "nbf", "iat"))
    assert response.json()["expires_in"] >= 60


@pytest.mark.django_db
def test_owner_may_push_and_pull_own_namespace_only(user: Any) -> None:
    auth = _basic("alice", token_for(user))
    access = _access(
        _token(Client(), auth, "repository:alice/new:push,pull", "repository:bob/x:push,pull")
    )
    assert access == {"repository:alice/new": ["pull", "push"]}


@pytest.mark.django_db
def test_owner_may_delete_in_own_namespace_only(user: Any, outsider: Any) -> None:
    scopes = ("repository:alice/m:delete", "repository:mallory/m:delete")
    access = _access(_token(Client(), _basic("alice", token_for(user)), *scopes))
    assert access == {"repository:alice/m": ["delete"]}
    Model.objects.create(
        owner=user.account, name="m", visibility=Model.Visibility.PUBLIC, default_hardware=cpu()
    )
    theirs = _access(_token(Client(), _basic("mallory", token_for(outsider)), scopes[0]))
    assert theirs == {}  # a public model is pullable, never deletable by others


@pytest.mark.django_db
def test_password_login_works_for_people(user: Any) -> None:
    user.set_password("correct horse battery")
    user.save()
    access = _access(
        _token(Client(), _basic("alice", "correct horse battery"), "repository:alice/m:push")
    )
    assert access == {"repository:alice/m": ["push"]}


@pytest.mark.django_db
def test_bad_credentials_are_401(user: Any) -> None:
    client = Client()
    assert _token(client, _basic("alice", "wrong")).status_code == 401
    assert _token(client, _basic("alice", "mkt_nope")).status_code == 401
    # Someone else's token does not work under your name.
    other = UserFactory(username="bob")
    assert _token(client, _basic("alice", token_for(other))).status_code == 401
    assert _token(client, "Bearer something").status_code == 401
    assert _token(client, _basic(ROBOT_USERNAME, "forged:signature")).status_code == 401


@pytest.mark.django_db
def test_others_pull_public_models_but_never_private_ones_or_push(user: Any) -> None:
    publish(user, "hello", "public-one")
    private = publish(user, "hello-concurrent", "secret-one").model
    Model.objects.filter(pk=private.pk).update(visibility=Model.Visibility.PRIVATE)
    mallory = UserFactory(username="mallory")
    access = _access(
        _token(
            Client(),
            _basic("mallory", token_for(mallory)),
            "repository:alice/public-one:push,pull",
            "repository:alice/secret-one:pull",
        )
    )
    assert access == {"repository:alice/public-one": ["pull"]}
    # Anonymous callers get a token with nothing in it (the registry then answers 401).
    assert _access(_token(Client(), None, "repository:alice/public-one:pull")) == {}


@pytest.mark.django_db
def test_catalog_is_for_staff_only(user: Any) -> None:
    client = Client()
    assert _access(_token(client, _basic("alice", token_for(user)), "registry:catalog:*")) == {}
    staff = UserFactory(username="ops", is_staff=True)
    access = _access(_token(client, _basic("ops", token_for(staff)), "registry:catalog:*"))
    assert access == {"registry:catalog": ["*"]}


@pytest.mark.django_db
def test_agents_pull_anything_with_a_signed_robot_credential(user: Any) -> None:
    publish(user, "hello", "private-one")
    auth = _basic(ROBOT_USERNAME, robot_password("gpu-host-1"))
    access = _access(_token(Client(), auth, "repository:alice/private-one:pull,push"))
    assert access == {"repository:alice/private-one": ["pull"]}


@pytest.mark.django_db
def test_unknown_service_is_refused(user: Any) -> None:
    response = _token(Client(), _basic("alice", token_for(user)), service="someone-elses-registry")
    assert response.status_code == 400


@pytest.mark.django_db
def test_notifications_need_the_shared_secret() -> None:
    client = Client()
    body = {"events": []}
    assert client.post("/registry/events", body, content_type="application/json").status_code == 401
    wrong = client.post(
        "/registry/events", body, content_type="application/json", HTTP_AUTHORIZATION="Bearer x"
    )
    assert wrong.status_code == 401
    ok = client.post(
        "/registry/events",
        body,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {notify_secret()}",
    )
    assert ok.status_code == 200
    bad = client.post(
        "/registry/events",
        "not json",
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {notify_secret()}",
    )
    assert bad.status_code == 400
