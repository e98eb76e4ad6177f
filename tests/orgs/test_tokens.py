"""Scoped API tokens: a token acts for one account (its user's own or one organisation), reads
only or reads and writes, and may expire."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from marketplace.accounts.models import ApiToken, Membership
from marketplace.audit.models import AuditEvent
from marketplace.predictions.models import Prediction
from marketplace.predictions.services import prediction_create
from tests.orgs.conftest import World


def test_a_read_token_reads_but_every_unsafe_method_is_refused_naming_its_permission(
    world: World,
) -> None:
    client = world.api("owner", world.token("owner", account=world.org, permission="read"))
    assert client.get("/v1/models/acme/secret").status_code == 200
    assert client.get(f"/v1/predictions/{world.prediction.pk}").status_code == 200
    assert client.generic("QUERY", "/v1/models", "secret").status_code == 200
    refused = [
        client.post("/v1/predictions", {"version": "acme/secret", "input": {}}, format="json"),
        client.patch("/v1/models/acme/secret", {"description": "x"}, format="json"),
        client.post(f"/v1/predictions/{world.prediction.pk}/cancel"),
        client.delete(f"/v1/files/{world.file.pk}"),
    ]
    for response in refused:
        assert response.status_code == 403
        assert response["Content-Type"] == "application/problem+json"
        assert "permission is read" in response.json()["detail"]
    assert set(Prediction.objects.values_list("pk", flat=True)) == {
        world.prediction.pk,
        world.training.pk,
    }  # nothing created
    world.prediction.refresh_from_db()
    assert world.prediction.status == Prediction.Status.STARTING


def test_expired_tokens_authenticate_as_nobody(world: World) -> None:
    owner = world.users["owner"]
    expired, past = ApiToken.create_for(owner, expires_at=timezone.now() - timedelta(seconds=1))
    _, future = ApiToken.create_for(owner, expires_at=timezone.now() + timedelta(days=1))
    response = world.api("owner", past).get("/v1/account")
    assert response.status_code == 401 and response["Content-Type"] == "application/problem+json"
    assert world.api("owner", future).get("/v1/account").status_code == 200
    assert expired.is_expired


def test_an_org_token_stops_working_when_its_user_leaves(world: World) -> None:
    key = world.keys["member"]
    assert world.api("member", key).get("/v1/account").json()["username"] == "acme"
    Membership.objects.filter(user=world.users["member"]).delete()
    assert world.api("member", key).get("/v1/account").status_code == 401


def test_a_token_sees_only_the_private_things_of_its_own_account(world: World) -> None:
    personal = world.api("owner", world.token("owner"))
    org = world.api("owner")
    assert personal.get("/v1/account").json()["type"] == "user"
    # The user's own token does not see the org's private model, and the org's token does not
    # see the user's (Replicate's organisation tokens see only the organisation).
    assert personal.get("/v1/models/acme/secret").status_code == 404
    assert org.get("/v1/models/olive/diary").status_code == 404
    assert personal.get("/v1/models/olive/diary").status_code == 200
    assert org.get("/v1/models/acme/secret").status_code == 200
    assert personal.get(f"/v1/predictions/{world.prediction.pk}").status_code == 404
    assert personal.get(f"/v1/files/{world.file.pk}").status_code == 404
    assert (
        personal.post(
            "/v1/predictions", {"version": "acme/secret", "input": {}}, format="json"
        ).status_code
        == 422
    )
    # The site shows a person everything of every account they belong to.
    site = world.site("owner")
    assert site.get("/acme/secret").status_code == 200
    assert site.get("/olive/diary").status_code == 200


def test_lists_are_filtered_to_what_the_token_may_see(world: World) -> None:
    member = world.users["member"]
    own = prediction_create(
        version=world.version, input={"text": "x"}, account=member.account, created_by=member
    )
    # Not the member's: they ran it, but for acme — and public models are still run by others.
    personal = world.api("member", world.token("member"))
    assert [p["id"] for p in personal.get("/v1/predictions").json()["results"]] == [own.pk]
    org_ids = [p["id"] for p in world.api("member").get("/v1/predictions").json()["results"]]
    assert org_ids == [world.prediction.pk]
    # Search is over public models only, as the reference says, whatever the token.
    for api in (personal, world.api("member")):
        found = api.generic("QUERY", "/v1/models", "acme").json()["results"]
        assert [m["name"] for m in found] == ["open"]
    assert [f["id"] for f in world.api("member").get("/v1/files").json()["results"]] == [
        world.file.pk
    ]
    assert personal.get("/v1/files").json()["results"] == []


def test_last_use_is_recorded(world: World) -> None:
    token = ApiToken.objects.get(user=world.users["member"], account=world.org)
    assert token.last_used_at is None
    world.api("member").get("/v1/account")
    token.refresh_from_db()
    assert token.last_used_at is not None


def test_tokens_can_be_scoped_only_to_accounts_their_user_belongs_to(world: World) -> None:
    with pytest.raises(ValueError):
        ApiToken.create_for(world.users["outsider"], "x", account=world.org)
    with pytest.raises(ValueError):
        ApiToken.create_for(world.users["outsider"], "x", account=world.users["owner"].account)


def test_the_tokens_page_creates_scoped_tokens_and_lists_scope_permission_expiry_and_use(
    world: World,
) -> None:
    site = world.site("read_only")
    tomorrow = (timezone.now() + timedelta(days=2)).date().isoformat()
    response = site.post(
        "/account/tokens",
        {"name": "ci", "scope": "acme", "permission": "read", "expires_on": tomorrow},
        follow=True,
    )
    assert response.status_code == 200
    token = ApiToken.objects.get(user=world.users["read_only"], name="ci")
    assert token.account == world.org and token.permission == "read"
    assert token.expires_at is not None and token.expires_at.date().isoformat() == tomorrow
    raw = response.content.decode().split('id="new-token" type="text" readonly value="')[1]
    world.api("read_only", raw.split('"')[0]).get("/v1/account")
    html = site.get("/account/tokens").content.decode()
    row = html.split("<td>ci</td>")[1].split("</tr>")[0]
    assert "acme (organization)" in row and "read-only" in row and tomorrow in row
    assert "never" not in row.split("</td>")[-2]  # last used is filled in
    event = AuditEvent.objects.get(action="token.create")
    assert event.actor == world.users["read_only"] and event.account == world.org

    # An outsider cannot scope a token to acme, nor set an expiry in the past.
    refused = world.site("outsider").post("/account/tokens", {"name": "x", "scope": "acme"})
    assert refused.status_code == 200 and "Select a valid choice" in refused.content.decode()
    past = site.post("/account/tokens", {"name": "y", "expires_on": "2001-01-01"})
    assert "Choose a day after today" in past.content.decode()
    assert not ApiToken.objects.filter(name__in=["x", "y"]).exists()
