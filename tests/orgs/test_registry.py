"""The registry honours token scopes: an organisation's members push to ``org/*`` with a write
token scoped to it; read tokens, read-only members and user-scoped tokens only pull (or nothing).

The grants are checked at the token endpoint; the ``docker push`` test runs the real registry,
dockerd and the docker CLI (the fixtures of tests/docker).
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from marketplace.catalog.models import Model, Version
from marketplace.registry.models import ImagePush
from marketplace.registry.services import version_id_for
from tests.conftest import wait_for
from tests.orgs.conftest import World
from tests.registry.test_token_endpoint import _access, _basic, _token

SCOPES = ("repository:acme/secret:push,pull,delete", "repository:acme/open:pull")


def _grants(username: str, key: str) -> dict[str, list[str]]:
    return _access(_token(Client(), _basic(username, key), *SCOPES))


def test_org_write_tokens_of_owners_and_members_push_pull_and_delete(world: World) -> None:
    full = {"repository:acme/secret": ["delete", "pull", "push"], "repository:acme/open": ["pull"]}
    assert _grants("olive", world.keys["owner"]) == full
    assert _grants("mia", world.keys["member"]) == full


def test_read_tokens_and_read_only_members_only_pull(world: World) -> None:
    pull = {"repository:acme/secret": ["pull"], "repository:acme/open": ["pull"]}
    assert _grants("rita", world.keys["read_only"]) == pull
    read_token = world.token("member", account=world.org, permission="read")
    assert _grants("mia", read_token) == pull


def test_user_scoped_tokens_and_outsiders_get_nothing_private_of_the_org(world: World) -> None:
    public_only = {"repository:acme/open": ["pull"]}
    assert _grants("olive", world.token("owner")) == public_only
    assert _grants("oscar", world.keys["outsider"]) == public_only
    # An org token does not reach its user's own namespace either.
    own = _access(_token(Client(), _basic("olive", world.keys["owner"]), "repository:olive/x:push"))
    assert own == {}
    # A token is presented with its own user's name only.
    assert _token(Client(), _basic("olive", world.keys["member"])).status_code == 401


@pytest.mark.slow
def test_docker_push_to_an_org_with_a_members_org_token(
    registry_stack: Any, cog_images: dict[str, str], world: World
) -> None:
    from marketplace.accounts.models import Account, ApiToken

    org = Account.objects.get(username="acme")
    # registry_stack makes the database transactional, so the web server sees the world.
    mia = world.users["member"]

    def login_and_push(username: str, key: str, repository: str) -> Any:
        login = registry_stack.login(username, key)
        assert login.returncode == 0, login.stderr
        return registry_stack.push(cog_images["hello"], repository, "v1")

    refused = login_and_push("rita", world.keys["read_only"], "acme/pushed")
    assert refused.returncode != 0
    assert "denied" in refused.stderr or "unauthorized" in refused.stderr.lower(), refused.stderr
    _, read_key = ApiToken.create_for(mia, "read", account=org, permission="read")
    assert login_and_push("mia", read_key, "acme/pushed").returncode != 0
    assert login_and_push("mia", world.token("member"), "acme/pushed").returncode != 0
    assert not ImagePush.objects.filter(repository="acme/pushed").exists()

    pushed = login_and_push("mia", world.keys["member"], "acme/pushed")
    assert pushed.returncode == 0, pushed.stderr
    push = wait_for(
        lambda: ImagePush.objects.filter(repository="acme/pushed").first(),
        timeout=30,
        message="the registry's notification",
    )
    assert push.outcome == ImagePush.Outcome.PUBLISHED, push.reason
    assert push.pushed_by == "mia"
    version = Version.objects.get(pk=version_id_for("acme/pushed", push.digest))
    assert version.model.owner == org
    assert Model.objects.get(owner=org, name="pushed").visibility == Model.Visibility.PRIVATE
    # The read-only member may pull what they may see.
    login = registry_stack.login("rita", world.keys["read_only"])
    assert login.returncode == 0, login.stderr
    pulled = registry_stack.docker("pull", f"{registry_stack.host}/acme/pushed@{push.digest}")
    assert pulled.returncode == 0, pulled.stderr
    registry_stack.docker("rmi", f"{registry_stack.host}/acme/pushed@{push.digest}")
