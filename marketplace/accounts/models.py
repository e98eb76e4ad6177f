"""Owners (namespaces) and API tokens.

An :class:`Account` is a namespace that owns models and predictions and pays for them. Every user
has a personal account with the same name; organisations become accounts of type ``organization``
without changing anything that points at an account.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any, Union

from django.conf import settings
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

    # The API token a request authenticated with (set by ApiToken.objects.authenticate on the
    # user object it returns, which lives for that request only). It narrows every access check
    # to the token's account and, for a read token, to reading.
    api_token: ApiToken | None = None

    @property
    def account(self) -> Account:
        """The account this user acts as: an organisation-scoped token's organisation, else their
        personal account (web views choose an organisation explicitly)."""
        token = self.api_token
        if token is not None and token.account_id is not None:
            assert token.account is not None
            return token.account
        return self.personal_account

    @property
    def scope_account_id(self) -> int | None:
        """The one account an API token confines this user to; None on the site (no token)."""
        token = self.api_token
        if token is None:
            return None
        return token.account_id or self.personal_account.pk


# What request.user can be: views pass it straight to access checks.
AnyUser = Union["User", AnonymousUser, None]


def signed_in(user: AnyUser) -> User:
    """The user of a request whose view requires sign-in (login_required, or the API's
    authentication and IsAuthenticated)."""
    assert isinstance(user, User), "this view requires a signed-in user"
    return user


def new_webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


ROLE_RANK = {"read_only": 1, "member": 2, "owner": 3}


def member_accounts(user: AnyUser, at_least: str = "read_only") -> models.QuerySet[Account, Any]:
    """Ids of the accounts ``user`` holds at least the role ``at_least`` in, as a subquery for
    filters such as ``owner__in=`` (personal account: every role). An API token narrows it to
    its own account; write roles also need a write token."""
    if user is None or not user.is_authenticated:
        return Account.objects.none().values("pk")
    assert isinstance(user, User)
    scope = user.scope_account_id
    if scope is not None and at_least == "read_only":
        # Authentication already checked the token's user belongs to its account.
        return Account.objects.filter(pk=scope).values("pk")
    memberships = Membership.objects.filter(user=user)
    if at_least != "read_only":
        roles = [role for role, rank in ROLE_RANK.items() if rank >= ROLE_RANK[at_least]]
        memberships = memberships.filter(role__in=roles)
    accounts = Account.objects.filter(
        models.Q(user=user) | models.Q(pk__in=memberships.values("account"))
    )
    if scope is not None:
        accounts = accounts.filter(pk=scope)
        if not _token_writes(user):
            return Account.objects.none().values("pk")
    return accounts.values("pk")


def _token_writes(user: AnyUser) -> bool:
    token = getattr(user, "api_token", None)
    return token is None or token.permission == ApiToken.Permission.WRITE


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

    @property
    def avatar_url(self) -> str:
        """A picture of the account's initial, drawn by the site (``/avatars/<name>.svg``)."""
        return f"{settings.PUBLIC_URL}/avatars/{self.username}.svg"

    @property
    def is_organization(self) -> bool:
        return self.type == self.Type.ORGANIZATION

    # Access by role. For a personal account its user holds every role; organisations answer
    # from their memberships (owner ⊇ member ⊇ read-only). A request authenticated with an API
    # token sees only the token's account, and a read token changes nothing.
    def role_of(self, user: AnyUser) -> str | None:
        """``user``'s role here (owner, member, read_only) or None; one query per account and
        user, remembered on this instance."""
        if user is None or not user.is_authenticated:
            return None
        assert isinstance(user, User)
        if user.scope_account_id is not None and user.scope_account_id != self.pk:
            return None
        if self.user_id is not None:
            return Membership.Role.OWNER if self.user_id == user.pk else None
        cache: dict[int, str | None] = self.__dict__.setdefault("_roles", {})
        if user.pk not in cache:
            cache[user.pk] = (
                Membership.objects.filter(account=self, user=user)
                .values_list("role", flat=True)
                .first()
            )
        return cache[user.pk]

    def forget_roles(self) -> None:
        """Drop the roles remembered by :meth:`role_of` (after memberships change)."""
        self.__dict__.pop("_roles", None)

    def is_member(self, user: AnyUser, at_least: str = "read_only") -> bool:
        """Whether ``user`` may see this account's private things (any role), or holds at least
        the role ``at_least`` (for reading what only that role may read, e.g. billing)."""
        role = self.role_of(user)
        return role is not None and ROLE_RANK[role] >= ROLE_RANK[at_least]

    def can_write(self, user: AnyUser) -> bool:
        """Whether ``user`` may create and change this account's models, predictions and
        deployments (owner or member)."""
        return self.is_member(user, "member") and _token_writes(user)

    def can_admin(self, user: AnyUser) -> bool:
        """Whether ``user`` may change this account's settings, members, tokens and billing."""
        return self.is_member(user, "owner") and _token_writes(user)

    def owners_count(self) -> int:
        return self.memberships.filter(role=Membership.Role.OWNER).count()


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
        # Expired tokens, and organisation tokens of people no longer in the organisation,
        # authenticate as nobody.
        now = timezone.now()
        token = (
            self.select_related("user", "user__personal_account", "account")
            .filter(key_hash=_hash_key(raw_key), user__is_active=True)
            .filter(models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now))
            .filter(
                models.Q(account__isnull=True)
                | models.Q(account__memberships__user=models.F("user"))
            )
            .first()
        )
        if token is not None:
            token.touch()
            token.user.api_token = token
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
    def create_for(
        cls,
        user: User,
        name: str = "default",
        *,
        account: Account | None = None,
        permission: str = "write",
        expires_at: datetime | None = None,
    ) -> tuple[ApiToken, str]:
        """Create a token; return it and the raw key (the only time the key exists in clear).
        ``account`` is an organisation the user belongs to (None: their own account)."""
        if account is not None and account.user_id is not None:
            if account.user_id != user.pk:
                raise ValueError("A token can be scoped to your own account or an organisation")
            account = None  # the personal account is the default scope
        if account is not None and not account.is_member(user):
            raise ValueError(f"{user} is not a member of {account}")
        raw_key = cls.PREFIX + secrets.token_urlsafe(30)
        token = cls.objects.create(
            user=user,
            name=name,
            account=account,
            permission=permission,
            expires_at=expires_at,
            key_hash=_hash_key(raw_key),
            key_hint=raw_key[: len(cls.PREFIX) + 6],
        )
        return token, raw_key

    @property
    def scope_name(self) -> str:
        return self.account.username if self.account is not None else self.user.username

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    def touch(self) -> None:
        now = timezone.now()
        if self.last_used_at is None or now - self.last_used_at > self.TOUCH_INTERVAL:
            type(self).objects.filter(pk=self.pk).update(last_used_at=now)
            self.last_used_at = now
