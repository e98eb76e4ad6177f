from __future__ import annotations

from rest_framework import authentication, exceptions
from rest_framework.request import Request

from marketplace.accounts.models import ApiToken, User


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
        token = ApiToken.objects.authenticate(key.strip())
        if token is None:
            raise exceptions.AuthenticationFailed()
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        # Makes DRF answer 401 (with WWW-Authenticate) rather than 403 to anonymous callers.
        return 'Bearer realm="api"'
