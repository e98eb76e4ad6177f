"""Registry access policy and token minting (the Docker registry token protocol).

``docker login`` / ``push`` / ``pull`` ask the token endpoint for scopes such as
``repository:alice/hello:push,pull``; the platform grants the intersection of what was asked and
what the caller may do:

- people (and their API tokens): push, pull and delete on repositories of the accounts they may
  write to (a deleted manifest hides its version), pull on those they may only read (read-only
  members, read tokens), pull on public models of anyone. A token reaches only the account it is
  scoped to: a user-scoped token cannot push to an organisation, an organisation's token cannot
  push to its user's own namespace;
- the platform's own agents (a short-lived signed robot credential): pull on everything;
- staff: additionally ``registry:catalog:*``.

Anything else is silently left out; the registry answers 401 ``insufficient_scope`` for it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from django.conf import settings
from django.contrib.auth import authenticate
from django.core import signing

from marketplace.accounts.models import Account, ApiToken, User
from marketplace.catalog.models import Model
from marketplace.registry.keys import signing_key

ROBOT_USERNAME = "marketplace-agent"
_ROBOT_SALT = "marketplace.registry.robot"
_SCOPE = re.compile(
    r"^(?P<type>[a-z0-9]+)(?:\((?P<class>[a-z0-9]+)\))?:(?P<name>.+):(?P<actions>[a-z*,]*)$"
)


@dataclass
class Principal:
    name: str
    user: User | None = None
    robot: bool = False

    @property
    def is_staff(self) -> bool:
        return self.user is not None and self.user.is_staff


@dataclass
class Scope:
    type: str
    name: str
    actions: list[str] = field(default_factory=list)


def robot_password(host_name: str = "") -> str:
    """A credential for the platform's own pulls, valid for ``REGISTRY_ROBOT_TTL`` seconds."""
    return signing.TimestampSigner(salt=_ROBOT_SALT).sign(host_name or "agent")


def notify_secret() -> str:
    """The shared secret the registry sends with its notifications."""
    return (
        settings.REGISTRY_NOTIFY_SECRET
        or hmac.new(
            settings.SECRET_KEY.encode(), b"registry-notifications", hashlib.sha256
        ).hexdigest()
    )


def authenticate_basic(username: str, password: str) -> Principal | None:
    if username == ROBOT_USERNAME:
        try:
            host = signing.TimestampSigner(salt=_ROBOT_SALT).unsign(
                password, max_age=settings.REGISTRY_ROBOT_TTL
            )
        except signing.BadSignature:
            return None
        return Principal(name=f"{ROBOT_USERNAME}:{host}", robot=True)
    if password.startswith(ApiToken.PREFIX):
        token = ApiToken.objects.authenticate(password)
        if token is None or token.user.username.lower() != username.lower():
            return None
        return Principal(name=token.user.username, user=token.user)
    user = authenticate(username=username, password=password)
    if user is None or not user.is_active:
        return None
    assert isinstance(user, User)
    return Principal(name=user.username, user=user)


def parse_scopes(values: list[str]) -> list[Scope]:
    scopes = []
    for value in values:
        for item in value.split():
            match = _SCOPE.match(item)
            if match is None:
                continue
            actions = [a for a in match["actions"].split(",") if a]
            scopes.append(Scope(match["type"], match["name"], actions))
    return scopes


def _split_repository(name: str) -> tuple[str, str] | None:
    owner, sep, model = name.partition("/")
    if not sep or not owner or not model or "/" in model:
        return None
    return owner, model


def allowed_actions(principal: Principal | None, scope: Scope) -> set[str]:
    if scope.type == "registry":
        if scope.name == "catalog" and principal is not None and principal.is_staff:
            return {"*"}
        return set()
    if scope.type != "repository":
        return set()
    if principal is not None and principal.robot:
        return {"pull"}
    parts = _split_repository(scope.name)
    if parts is None:
        return set()
    owner, model_name = parts
    allowed: set[str] = set()
    if principal is not None and principal.user is not None:
        account = Account.objects.filter(username__iexact=owner).first()
        if account is not None and account.username == owner:
            # An API token reaches only its own account (user- or organisation-scoped); a
            # read token, or a read-only member, only pulls.
            if account.can_write(principal.user):
                allowed |= {"pull", "push", "delete"}
            elif account.is_member(principal.user):
                allowed.add("pull")
    if principal is not None and "pull" not in allowed:
        # Signed-in people may pull public models (e.g. to run them on their own machine).
        public = Model.objects.filter(
            owner__username=owner, name=model_name, visibility=Model.Visibility.PUBLIC
        ).exists()
        if public:
            allowed.add("pull")
    return allowed


def grant(principal: Principal | None, scopes: list[Scope]) -> list[dict[str, Any]]:
    access = []
    for scope in scopes:
        allowed = allowed_actions(principal, scope)
        if "*" in allowed:
            granted = sorted(set(scope.actions))
        else:
            granted = sorted(a for a in set(scope.actions) if a in allowed)
        if granted:
            access.append({"type": scope.type, "name": scope.name, "actions": granted})
    return access


def mint(subject: str, access: list[dict[str, Any]], ttl: int | None = None) -> str:
    key = signing_key()
    now = int(time.time())
    claims = {
        "iss": settings.REGISTRY_TOKEN_ISSUER,
        "sub": subject,
        "aud": settings.REGISTRY_SERVICE,  # a string: distribution 2.8 rejects a list
        "iat": now,
        "nbf": now,
        "exp": now + int(ttl or settings.REGISTRY_TOKEN_TTL),
        "jti": uuid.uuid4().hex,
        "access": access,
    }
    return jwt.encode(claims, key.private_key, algorithm=key.algorithm, headers={"x5c": key.x5c})
