"""Who a request is, and what its token lets it do: the API's one place for both.

A token belongs to a user and acts for one account: the user's own (``account`` empty) or one
organisation they belong to. ``ApiToken.objects.authenticate`` hangs the token on the user it
returns, so every access check (``Account.is_member`` / ``can_write`` / ``can_admin``, the
``visible_to`` querysets) sees only that account's private things plus public ones. Expired
tokens, and organisation tokens of people who left, authenticate as nobody (401). Read tokens
may use safe methods only (403, naming the permission).
"""

from __future__ import annotations

from typing import Any

from rest_framework import authentication, exceptions
from rest_framework.permissions import SAFE_METHODS, IsAuthenticated
from rest_framework.request import Request

from marketplace import hotcache
from marketplace.accounts.models import Account, ApiToken, User

# QUERY /v1/models searches: it reads, like GET.
READ_METHODS = frozenset({*SAFE_METHODS, "QUERY"})


class TokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer <key>`` (the official clients) or ``Token <key>`` (Replicate's
    docs)."""

    keywords = ("bearer", "token")

    def authenticate(self, request: Request) -> tuple[User, ApiToken] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        keyword, _, key = header.partition(" ")
        if keyword.lower() not in self.keywords or not key.strip():
            raise exceptions.AuthenticationFailed()
        token = hotcache.authenticate(key.strip())
        if token is None:
            raise exceptions.AuthenticationFailed()
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        # Makes DRF answer 401 (with WWW-Authenticate) rather than 403 to anonymous callers.
        return 'Bearer realm="api"'


class TokenPermission(IsAuthenticated):
    """Signed in with a token, and a read token only reads."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if not super().has_permission(request, view):
            return False
        token = request.auth
        if isinstance(token, ApiToken):
            check_token_permission(token, str(request.method))
        return True


def check_token_permission(token: ApiToken, method: str) -> None:
    """A read token only reads: 403, naming the permission, for any other ``method`` (the MCP
    endpoint asks with the method of the ``/v1`` call each tool stands for)."""
    if token.permission == ApiToken.Permission.READ and method not in READ_METHODS:
        from marketplace.api.errors import Problem  # rest_framework.views imports this module

        raise Problem(
            403,
            f"This token's permission is read: it cannot {method} here. "
            "Create a token with write permission.",
            "Forbidden",
        )


def acting_account(request: Request, *, write: bool = False) -> Account:
    """The account a request acts for (its token's scope). ``write``: the caller must be allowed
    to create and change things there (an owner or member; read-only members get 403)."""
    user = request.user
    assert isinstance(user, User), "this view requires a signed-in user"
    return account_of(user, write=write)


def account_of(user: User, *, write: bool = False) -> Account:
    """:func:`acting_account` for a user that authenticated with a token outside DRF (MCP)."""
    account = user.account
    if write and not account.can_write(user):
        from marketplace.api.errors import Problem  # rest_framework.views imports this module

        raise Problem(
            403,
            f"Your role in {account.username} is read-only: you cannot change its resources",
            "Forbidden",
        )
    return account
