"""Owners (namespaces) and API tokens.

An :class:`Account` is a namespace that owns models and predictions and pays for them. Every user
has a personal account with the same name; organisations become accounts of type ``organization``
without changing anything that points at an account.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from datetime import timedelta
from typing import Union

from django.contrib.auth.models import AbstractUser, AnonymousUser
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from marketplace.accounts.validators import namespace_validator


class User(AbstractUser):
    username = models.CharField(
        "username",
        max_length=39,
        unique=True,
        validators=[namespace_validator],
        help_text="Your namespace: lowercase letters, digits and . _ - between them.",
        error_messages={"unique": "That name is taken."},
    )

    @property
    def account(self) -> Account:
        return self.personal_account


# What request.user can be: views pass it straight to access checks.
AnyUser = Union["User", AnonymousUser, None]


def signed_in(user: AnyUser) -> User:
    """The user of a request whose view requires sign-in (login_required, or the API's
    authentication and IsAuthenticated)."""
    assert isinstance(user, User), "this view requires a signed-in user"
    return user


def new_webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class Account(models.Model):
    class Type(models.TextChoices):
        USER = "user"
        ORGANIZATION = "organization"

    username = models.CharField(max_length=39, validators=[namespace_validator])
    type = models.CharField(max_length=16, choices=Type.choices, default=Type.USER)
    name = models.CharField(max_length=100, blank=True)
    # Set for personal accounts only.
    user = models.OneToOneField(
        User, null=True, blank=True, on_delete=models.CASCADE, related_name="personal_account"
    )
    github_url = models.URLField(blank=True)
    # How many days inputs, outputs and logs of this account's API predictions are kept; empty
    # means the install-wide PREDICTION_RETENTION_DAYS.
    retention_days = models.PositiveIntegerField(null=True, blank=True)
    # Signs this account's webhooks the Standard Webhooks way ("whsec_" + base64 key).
    webhook_secret = models.CharField(max_length=80, default=new_webhook_secret, editable=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("username"), name="account_username_ci_unique"),
        ]

    def __str__(self) -> str:
        return self.username

    @property
    def display_name(self) -> str:
        return self.name or self.username

    # Access by role. For a personal account its user holds every role; organisations answer
    # from their memberships (owner ⊇ member ⊇ read-only).
    def is_member(self, user: AnyUser) -> bool:
        """Whether ``user`` may see this account's private things (any role)."""
        return user is not None and user.is_authenticated and self.user_id == user.pk

    def can_write(self, user: AnyUser) -> bool:
        """Whether ``user`` may create and change this account's models, predictions and
        deployments (owner or member)."""
        return self.is_member(user)

    def can_admin(self, user: AnyUser) -> bool:
        """Whether ``user`` may change this account's settings, members, tokens and billing."""
        return self.is_member(user)


class Membership(models.Model):
    """A user's role in an organisation account."""

    class Role(models.TextChoices):
        OWNER = "owner"
        MEMBER = "member"
        READ_ONLY = "read_only", "read-only"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint("account", "user", name="membership_account_user_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user} is {self.role} of {self.account}"


class Invitation(models.Model):
    """An invitation to join an organisation, by username or by email, until accepted or
    declined."""

    class State(models.TextChoices):
        PENDING = "pending"
        ACCEPTED = "accepted"
        DECLINED = "declined"
        REVOKED = "revoked"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="invitations")
    # One of these names who is invited.
    user = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.CASCADE, related_name="invitations"
    )
    email = models.EmailField(blank=True)
    role = models.CharField(
        max_length=16, choices=Membership.Role.choices, default=Membership.Role.MEMBER
    )
    invited_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    created_at = models.DateTimeField(default=timezone.now)
    answered_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"invitation to {self.account} for {self.user or self.email} ({self.state})"


def _hash_key(raw_key: str) -> str:
    # Tokens carry 240 bits of randomness, so a fast hash is enough: there is nothing to brute
    # force, and authentication stays a single indexed lookup.
    return hashlib.sha256(raw_key.encode()).hexdigest()


class ApiTokenQuerySet(models.QuerySet["ApiToken"]):
    def authenticate(self, raw_key: str) -> ApiToken | None:
        if not raw_key.startswith(ApiToken.PREFIX):
            return None
        token = (
            self.select_related("user", "user__personal_account")
            .filter(key_hash=_hash_key(raw_key), user__is_active=True)
            .first()
        )
        if token is not None:
            token.touch()
        return token


class ApiToken(models.Model):
    """A secret a program presents as ``Authorization: Bearer <key>``.

    Only a SHA-256 of the key is stored; the key itself is shown once, when it is created.
    """

    PREFIX = "mkt_"
    # Writing last_used_at on every request would turn each API read into a write.
    TOUCH_INTERVAL = timedelta(minutes=1)

    class Permission(models.TextChoices):
        READ = "read"
        WRITE = "write"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, default="default")
    # The account the token acts for: the user's own (null) or one organisation they belong to.
    account = models.ForeignKey(
        Account, null=True, blank=True, on_delete=models.CASCADE, related_name="scoped_tokens"
    )
    permission = models.CharField(
        max_length=8, choices=Permission.choices, default=Permission.WRITE
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    key_hint = models.CharField(
        max_length=16, editable=False, help_text="First characters, for display"
    )
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    def __str__(self) -> str:
        return f"{self.name} ({self.key_hint}…)"

    @classmethod
    def create_for(cls, user: User, name: str = "default") -> tuple[ApiToken, str]:
        """Create a token; return it and the raw key (the only time the key exists in clear)."""
        raw_key = cls.PREFIX + secrets.token_urlsafe(30)
        token = cls.objects.create(
            user=user,
            name=name,
            key_hash=_hash_key(raw_key),
            key_hint=raw_key[: len(cls.PREFIX) + 6],
        )
        return token, raw_key

    def touch(self) -> None:
        now = timezone.now()
        if self.last_used_at is None or now - self.last_used_at > self.TOUCH_INTERVAL:
            type(self).objects.filter(pk=self.pk).update(last_used_at=now)
            self.last_used_at = now
