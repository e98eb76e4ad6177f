"""Creating organisations, inviting people, roles, leaving, and moving models between owners,
through the site's pages (real forms, CSRF on)."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import mail
from django.test import Client

from marketplace.accounts.models import Account, ApiToken, Invitation, Membership
from marketplace.audit.models import AuditEvent
from marketplace.catalog.models import Model
from tests.factories import UserFactory
from tests.orgs.conftest import World


def _csrf_client(user: Any) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def _post(client: Client, path: str, data: dict[str, str], page: str) -> Any:
    """Post a form the way a browser does: with the CSRF token of the page it came from."""
    client.get(page)
    return client.post(path, {**data, "csrfmiddlewaretoken": client.cookies["csrftoken"].value})


def test_anyone_signed_in_creates_an_organization_named_like_a_user(db: None) -> None:
    zoe = UserFactory(username="zoe")
    client = _csrf_client(zoe)
    page = "/account/organizations"
    for name, message in [
        ("billing", "reserved"),
        ("zoe", "taken"),
        ("Big Co", "lowercase"),
        ("", "lowercase"),
    ]:
        response = _post(client, page, {"username": name}, page)
        assert response.status_code == 422, name
        assert message in response.content.decode().lower(), name
    assert not Account.objects.filter(type=Account.Type.ORGANIZATION).exists()
    forged = _csrf_client(zoe)
    assert forged.post(page, {"username": "forged"}).status_code == 403  # no CSRF token

    response = _post(client, page, {"username": "zoe-labs", "name": "Zoe Labs"}, page)
    assert response.status_code == 302 and response["Location"].endswith("/zoe-labs/members")
    org = Account.objects.get(username="zoe-labs")
    assert org.type == "organization" and org.user is None and org.display_name == "Zoe Labs"
    assert Membership.objects.get(account=org).role == "owner"
    assert AuditEvent.objects.filter(action="organization.create", account=org).exists()
    # Its namespace is taken for users too, and its profile and members page exist.
    assert _post(client, page, {"username": "ZOE-LABS"}, page).status_code == 422
    assert client.get("/zoe-labs").status_code == 200
    assert "Zoe Labs" in client.get("/account/organizations").content.decode()


def test_invitation_by_username_accept_and_decline(world: World) -> None:
    nina, omar = UserFactory(username="nina"), UserFactory(username="omar")
    owner = _csrf_client(world.users["owner"])
    members = "/account/organizations/acme/members"
    for who, role in (("nina", "read_only"), ("omar", "member")):
        response = _post(
            owner, "/account/organizations/acme/invite", {"who": who, "role": role}, members
        )
        assert response.status_code == 302
    again = _post(
        owner, "/account/organizations/acme/invite", {"who": "nina", "role": "member"}, members
    )
    assert again.status_code == 422 and "pending invitation" in again.content.decode()
    taken = _post(
        owner, "/account/organizations/acme/invite", {"who": "mia", "role": "owner"}, members
    )
    assert "already a member" in taken.content.decode()
    assert "nina" in owner.get(members).content.decode()

    inbox = "/account/invitations"
    nina_client, omar_client = _csrf_client(nina), _csrf_client(omar)
    assert "acme" in nina_client.get(inbox).content.decode()
    invitation = Invitation.objects.get(user=nina)
    # Nobody answers someone else's invitation.
    assert (
        _post(omar_client, f"/account/invitations/{invitation.pk}/accept", {}, inbox).status_code
        == 404
    )
    accepted = _post(nina_client, f"/account/invitations/{invitation.pk}/accept", {}, inbox)
    assert accepted.status_code == 302
    assert Membership.objects.get(account=world.org, user=nina).role == "read_only"
    assert nina_client.get("/acme/secret").status_code == 200  # now a (read-only) member
    declined = Invitation.objects.get(user=omar)
    assert (
        _post(omar_client, f"/account/invitations/{declined.pk}/decline", {}, inbox).status_code
        == 302
    )
    declined.refresh_from_db()
    assert declined.state == "declined" and not world.org.memberships.filter(user=omar).exists()
    assert omar_client.get("/acme/secret").status_code == 404
    actions = set(AuditEvent.objects.filter(account=world.org).values_list("action", flat=True))
    assert {"invitation.create", "invitation.accept", "invitation.decline"} <= actions


def test_invitation_by_email_reaches_whoever_follows_the_mailed_link(world: World) -> None:
    owner = _csrf_client(world.users["owner"])
    members = "/account/organizations/acme/members"
    _post(
        owner,
        "/account/organizations/acme/invite",
        {"who": "pat@example.org", "role": "member"},
        members,
    )
    bad = _post(
        owner, "/account/organizations/acme/invite", {"who": "pat@", "role": "member"}, members
    )
    assert bad.status_code == 422 and "valid email" in bad.content.decode()
    # The mail goes out on commit; these tests run in one transaction, so send what would be sent.
    invitation = Invitation.objects.get(email="pat@example.org")
    assert invitation.user is None
    from marketplace.accounts.orgs import invitation_link_token

    link = f"/account/invitations/claim/{invitation_link_token(invitation)}"
    # An account that merely claims the address (unverified) is not matched.
    pat = UserFactory(username="pat", email="pat@example.org")
    pat_client = _csrf_client(pat)
    assert "acme" not in pat_client.get("/account/invitations").content.decode()
    assert pat_client.get(link).status_code == 302
    assert "acme" in pat_client.get("/account/invitations").content.decode()
    invitation.refresh_from_db()
    assert invitation.user == pat
    # Once claimed, it is pat's; a tampered link is refused.
    other = _csrf_client(UserFactory(username="quinn"))
    other.get(link)
    invitation.refresh_from_db()
    assert invitation.user == pat
    assert "invalid" in other.get(link[:-3] + "abc", follow=True).content.decode()
    _post(pat_client, f"/account/invitations/{invitation.pk}/accept", {}, "/account/invitations")
    assert Membership.objects.get(account=world.org, user=pat).role == "member"


@pytest.mark.django_db(transaction=True)
def test_the_email_invitation_is_mailed_with_its_link(world: World) -> None:
    owner = _csrf_client(world.users["owner"])
    members = "/account/organizations/acme/members"
    _post(
        owner,
        "/account/organizations/acme/invite",
        {"who": "pat@example.org", "role": "member"},
        members,
    )
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["pat@example.org"]
    assert "/account/invitations/claim/" in mail.outbox[0].body


def test_roles_change_and_the_last_owner_cannot_leave_or_step_down(world: World) -> None:
    owner = _csrf_client(world.users["owner"])
    members = "/account/organizations/acme/members"
    base = "/account/organizations/acme/members"
    step_down = _post(owner, f"{base}/olive/role", {"role": "member"}, members)
    assert step_down.status_code == 422 and "at least one owner" in step_down.content.decode()
    leave = _post(owner, f"{base}/olive/remove", {}, members)
    assert leave.status_code == 422 and "last owner" in leave.content.decode()
    assert _post(owner, f"{base}/mia/role", {"role": "owner"}, members).status_code == 302
    assert world.org.memberships.get(user=world.users["member"]).role == "owner"
    assert _post(owner, f"{base}/mia/role", {"role": "boss"}, members).status_code == 422
    # With a second owner, olive may leave; her org tokens go with her membership.
    olive_key = world.keys["owner"]
    assert _post(owner, f"{base}/olive/remove", {}, members)["Location"] == "/account/organizations"
    assert world.api("owner", olive_key).get("/v1/account").status_code == 401
    assert not ApiToken.objects.filter(user=world.users["owner"], account=world.org).exists()
    assert owner.get("/acme/secret").status_code == 404
    events = AuditEvent.objects.filter(account=world.org).values_list("action", flat=True)
    assert {"membership.role", "membership.leave"} <= set(events)


def test_owners_remove_members_and_members_may_only_leave(world: World) -> None:
    member = _csrf_client(world.users["member"])
    members = "/account/organizations/acme/members"
    base = "/account/organizations/acme/members"
    assert _post(member, f"{base}/rita/remove", {}, members).status_code == 403
    assert _post(member, f"{base}/mia/remove", {}, members).status_code == 302  # leaves
    owner = _csrf_client(world.users["owner"])
    assert _post(owner, f"{base}/rita/remove", {}, members).status_code == 302
    assert list(world.org.memberships.values_list("user__username", flat=True)) == ["olive"]
    assert AuditEvent.objects.filter(action="membership.remove", data__member="rita").exists()


def test_a_model_moves_between_a_user_and_an_organization(world: World) -> None:
    owner = _csrf_client(world.users["owner"])
    edit = "/acme/secret/edit"
    assert 'name="to"' in owner.get(edit).content.decode()
    moved = _post(owner, "/acme/secret/transfer", {"to": "olive"}, edit)
    assert moved.status_code == 302 and moved["Location"] == "/olive/secret"
    assert owner.get("/olive/secret").status_code == 200
    assert owner.get("/acme/secret").status_code == 404
    # Now olive's own: acme's members lose it, and acme's tokens with it.
    assert _csrf_client(world.users["member"]).get("/olive/secret").status_code == 404
    assert world.api("member").get("/v1/models/olive/secret").status_code == 404
    assert (
        world.api("owner", world.token("owner")).get("/v1/models/olive/secret").status_code == 200
    )
    assert AuditEvent.objects.filter(
        action="model.transfer", data__source="acme", data__destination="olive"
    ).exists()
    # Back to acme; a name already used there is refused.
    Model.objects.create(
        owner=world.org, name="diary", default_hardware=world.secret.default_hardware
    )
    clash = _post(owner, "/olive/diary/transfer", {"to": "acme"}, "/olive/diary/edit")
    assert clash["Location"] == "/olive/diary/edit"
    assert "already has a model named diary" in owner.get("/olive/diary/edit").content.decode()
    assert (
        _post(owner, "/olive/secret/transfer", {"to": "acme"}, "/olive/secret/edit").status_code
        == 302
    )
    assert Model.objects.get(name="secret").owner == world.org
    # Nobody moves a model to an account they cannot write to.
    reader = _csrf_client(world.users["read_only"])
    assert _post(reader, "/acme/secret/transfer", {"to": "rita"}, "/acme/secret").status_code == 404
    mia = _csrf_client(world.users["member"])
    assert (
        _post(mia, "/acme/secret/transfer", {"to": "olive"}, "/acme/secret/edit").status_code == 404
    )


def test_members_create_models_for_the_organization(world: World) -> None:
    member = _csrf_client(world.users["member"])
    page = "/new?owner=acme"
    assert 'value="acme" selected' in member.get(page).content.decode()
    data = {
        "owner": "acme",
        "name": "tool",
        "visibility": "private",
        "default_hardware": world.secret.default_hardware_id,
    }
    member.get(page)
    response = member.post(
        "/new", {**data, "csrfmiddlewaretoken": member.cookies["csrftoken"].value}
    )
    assert response.status_code == 302 and response["Location"] == "/acme/tool/push"
    assert Model.objects.get(name="tool").owner == world.org
    again = member.post("/new", {**data, "csrfmiddlewaretoken": member.cookies["csrftoken"].value})
    assert "acme already has a model with that name" in again.content.decode()
    reader = _csrf_client(world.users["read_only"])
    reader.get("/new")
    refused = reader.post(
        "/new", {**data, "name": "x", "csrfmiddlewaretoken": reader.cookies["csrftoken"].value}
    )
    assert refused.status_code == 200 and "Select a valid choice" in refused.content.decode()
    assert not Model.objects.filter(name="x").exists()
