"""Organisations: creating one, inviting people, roles, leaving, and moving models between owners.

Every function checks the actor's role itself (``can_admin`` for memberships, ``can_write`` on
both sides of a transfer), runs in one transaction and records an audit event, so a view only
translates :class:`OrgError` into a message next to the form.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from marketplace import audit
from marketplace.accounts.models import Account, ApiToken, Invitation, Membership, User
from marketplace.accounts.validators import RESERVED_NAMES, namespace_validator

if TYPE_CHECKING:
    from marketplace.catalog.models import Model

# An emailed invitation link proves its holder reads that mailbox; it lasts as long as this.
INVITATION_LINK_MAX_AGE = 14 * 24 * 3600
_LINK_SALT = "marketplace.accounts.invitation"
ROLES = tuple(Membership.Role.values)


class OrgError(ValueError):
    """A refusal to show the person, naming the field it is about."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class NotAllowed(OrgError):
    """The actor's role does not allow this (the site answers 403)."""


def _require_admin(account: Account, actor: User) -> None:
    if not account.is_organization or not account.can_admin(actor):
        raise NotAllowed("account", f"only owners of {account.username} may do this")


def _role(role: str) -> str:
    if role not in ROLES:
        raise OrgError("role", f"choose one of {', '.join(ROLES)}")
    return role


def organization_create(actor: User, username: str, name: str = "") -> Account:
    """A new organisation named like a user (same grammar, reserved and taken names refused),
    with ``actor`` as its first owner."""
    username = username.strip()
    try:
        namespace_validator(username)
    except ValidationError as exc:
        raise OrgError("username", exc.messages[0]) from exc
    if len(username) > 39:
        raise OrgError("username", "at most 39 characters")
    if username in RESERVED_NAMES:
        raise OrgError("username", "that name is reserved")
    try:
        with transaction.atomic():
            if Account.objects.filter(username__iexact=username).exists():
                raise OrgError("username", "that name is taken")
            account = Account.objects.create(
                username=username, name=name.strip()[:100], type=Account.Type.ORGANIZATION
            )
            Membership.objects.create(account=account, user=actor, role=Membership.Role.OWNER)
            audit.record("organization.create", actor=actor, account=account, target=account)
    except IntegrityError as exc:  # a concurrent create of the same name
        raise OrgError("username", "that name is taken") from exc
    return account


def invite(account: Account, actor: User, who: str, role: str) -> Invitation:
    """Invite a user by username, or anyone by email (they get a link that proves the address)."""
    _require_admin(account, actor)
    _role(role)
    who = who.strip()
    if not who:
        raise OrgError("who", "enter a username or an email address")
    with transaction.atomic():
        if "@" in who:
            try:
                validate_email(who)
            except ValidationError as exc:
                raise OrgError("who", "enter a valid email address") from exc
            if account.invitations.filter(
                email__iexact=who, state=Invitation.State.PENDING
            ).exists():
                raise OrgError("who", f"{who} already has a pending invitation")
            invitation = Invitation.objects.create(
                account=account, email=who, role=role, invited_by=actor
            )
        else:
            user = User.objects.filter(username__iexact=who, is_active=True).first()
            if user is None:
                raise OrgError("who", f"there is no user named {who}")
            if account.memberships.filter(user=user).exists():
                raise OrgError("who", f"{user.username} is already a member")
            if account.invitations.filter(user=user, state=Invitation.State.PENDING).exists():
                raise OrgError("who", f"{user.username} already has a pending invitation")
            invitation = Invitation.objects.create(
                account=account, user=user, role=role, invited_by=actor
            )
        audit.record(
            "invitation.create",
            actor=actor,
            account=account,
            target=invitation,
            role=role,
            invitee=invitation.user.username if invitation.user else invitation.email,
        )
        if invitation.email:
            token = invitation_link_token(invitation)
            link = f"{settings.PUBLIC_URL}/account/invitations/claim/{token}"
            transaction.on_commit(
                lambda: send_mail(
                    f"Join {account.username} on marketplace",
                    f"{actor.username} invites you to join {account.username} as {role}.\n\n"
                    f"Sign in (or sign up), then open this link to see the invitation:\n{link}\n",
                    None,
                    [invitation.email],
                )
            )
    return invitation


def invitation_link_token(invitation: Invitation) -> str:
    return signing.dumps({"i": invitation.pk, "e": invitation.email.lower()}, salt=_LINK_SALT)


def invitation_claim(user: User, token: str) -> Invitation:
    """Bind an emailed invitation to the signed-in user who followed its link: holding the link
    proves the address (we do not trust an unverified account email for this)."""
    try:
        data = signing.loads(token, salt=_LINK_SALT, max_age=INVITATION_LINK_MAX_AGE)
    except signing.BadSignature as exc:
        raise OrgError("link", "this invitation link is invalid or has expired") from exc
    with transaction.atomic():
        invitation = (
            Invitation.objects.select_for_update()
            .filter(pk=data["i"], email__iexact=data["e"], state=Invitation.State.PENDING)
            .first()
        )
        if invitation is None:
            raise OrgError("link", "this invitation was answered or withdrawn")
        if invitation.user_id is None:
            invitation.user = user
            invitation.save(update_fields=["user"])
            audit.record(
                "invitation.claim", actor=user, account=invitation.account, target=invitation
            )
        elif invitation.user_id != user.pk:
            raise OrgError("link", "this invitation was claimed by someone else")
    return invitation


def pending_for(user: User) -> list[Invitation]:
    return list(
        Invitation.objects.filter(user=user, state=Invitation.State.PENDING)
        .select_related("account", "invited_by")
        .order_by("-created_at")
    )


def invitation_answer(invitation_id: int, user: User, accept: bool) -> Invitation:
    """Accept (become a member with the invited role) or decline one's own pending invitation."""
    with transaction.atomic():
        invitation = (
            Invitation.objects.select_for_update()
            .select_related("account")
            .filter(pk=invitation_id, user=user, state=Invitation.State.PENDING)
            .first()
        )
        if invitation is None:
            raise OrgError("invitation", "no such pending invitation")
        invitation.state = Invitation.State.ACCEPTED if accept else Invitation.State.DECLINED
        invitation.answered_at = timezone.now()
        invitation.save(update_fields=["state", "answered_at"])
        if accept:
            Membership.objects.get_or_create(
                account=invitation.account, user=user, defaults={"role": invitation.role}
            )
        audit.record(
            "invitation.accept" if accept else "invitation.decline",
            actor=user,
            account=invitation.account,
            target=invitation,
            role=invitation.role,
        )
    return invitation


def invitation_revoke(account: Account, actor: User, invitation_id: int) -> None:
    _require_admin(account, actor)
    with transaction.atomic():
        updated = Invitation.objects.filter(
            pk=invitation_id, account=account, state=Invitation.State.PENDING
        ).update(state=Invitation.State.REVOKED, answered_at=timezone.now())
        if not updated:
            raise OrgError("invitation", "no such pending invitation")
        audit.record("invitation.revoke", actor=actor, account=account, invitation=invitation_id)


def _locked_members(account: Account) -> dict[int, Membership]:
    """The organisation's memberships, locked: role changes and departures are serialised per
    organisation, so two owners cannot both leave it ownerless."""
    return {m.user_id: m for m in account.memberships.select_for_update().order_by("pk")}


def role_change(account: Account, actor: User, member: User, role: str) -> Membership:
    _require_admin(account, actor)
    _role(role)
    with transaction.atomic():
        members = _locked_members(account)
        membership = members.get(member.pk)
        if membership is None:
            raise OrgError("member", f"{member.username} is not a member")
        owners = sum(m.role == Membership.Role.OWNER for m in members.values())
        if membership.role == Membership.Role.OWNER and role != "owner" and owners == 1:
            raise OrgError("role", "an organisation needs at least one owner")
        previous = membership.role
        membership.role = role
        membership.save(update_fields=["role"])
        account.forget_roles()
        audit.record(
            "membership.role",
            actor=actor,
            account=account,
            target=membership,
            member=member.username,
            role=role,
            previous=previous,
        )
    return membership


def member_remove(account: Account, actor: User, member: User) -> None:
    """Remove a member (owners), or leave (anyone, for themselves). The last owner cannot go.
    The member's tokens scoped to the organisation are deleted with the membership."""
    if actor.pk != member.pk:
        _require_admin(account, actor)
    with transaction.atomic():
        members = _locked_members(account)
        membership = members.get(member.pk)
        if membership is None:
            raise OrgError("member", f"{member.username} is not a member")
        owners = sum(m.role == Membership.Role.OWNER for m in members.values())
        if membership.role == Membership.Role.OWNER and owners == 1:
            raise OrgError("member", "the last owner cannot leave; make someone else owner first")
        membership.delete()
        account.forget_roles()
        ApiToken.objects.filter(user=member, account=account).delete()
        audit.record(
            "membership.leave" if actor.pk == member.pk else "membership.remove",
            actor=actor,
            account=account,
            member=member.username,
            role=membership.role,
        )


def model_transfer(model: Model, actor: User, to: Account) -> Model:
    """Move a model (with its versions, predictions and prices) to another owner. The actor must
    be able to write to both; the name must be free there. The image repository name changes, so
    new pushes go to ``to/name``; versions keep their pinned images."""
    from marketplace.catalog.models import Model

    if not model.owner.can_write(actor) or not to.can_write(actor):
        raise NotAllowed("to", "you can only move a model between accounts you can write to")
    if to.pk == model.owner_id:
        raise OrgError("to", f"the model already belongs to {to.username}")
    with transaction.atomic():
        locked = Model.objects.select_for_update().select_related("owner").get(pk=model.pk)
        if Model.objects.filter(owner=to, name=locked.name).exists():
            raise OrgError("to", f"{to.username} already has a model named {locked.name}")
        source = locked.owner
        locked.owner = to
        try:
            with transaction.atomic():
                locked.save(update_fields=["owner", "updated_at"])
        except IntegrityError as exc:  # a model of that name was created meanwhile
            raise OrgError("to", f"{to.username} already has a model named {locked.name}") from exc
        audit.record(
            "model.transfer",
            actor=actor,
            account=to,
            target=locked,
            source=source.username,
            destination=to.username,
        )
    return locked
