"""Rate limits shared by every web process: fixed one-minute windows counted in Redis.

DRF's ``SimpleRateThrottle`` keeps its history in the Django cache, which is per process here;
an atomic INCR on a key that expires with its window is exact across processes and costs one
round trip.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from marketplace.redisconn import get_redis

if TYPE_CHECKING:  # rest_framework.views imports this module through its settings
    from rest_framework.views import APIView

    from marketplace.accounts.models import User

WINDOW_SECONDS = 60


class ApiRateThrottle(BaseThrottle):
    """Every API request except prediction creates: ``API_RATE_LIMIT`` per minute and caller."""

    scope = "api"

    def limit(self) -> int:
        return int(settings.API_RATE_LIMIT)

    def ident(self, request: Request) -> str:
        token = getattr(request, "auth", None)
        user = getattr(request, "user", None)
        if user is not None and getattr(user, "is_authenticated", False):
            return f"u{user.pk}"
        if token is not None:  # pragma: no cover - tokens always come with a user
            return f"t{token.pk}"
        return f"ip{self.get_ident(request)}"

    def allow_request(self, request: Request, view: APIView) -> bool:
        return self.allow(self.ident(request))

    def allow_user(self, user: User) -> bool:
        """The same count for a caller that authenticated outside DRF (MCP shares it)."""
        return self.allow(f"u{user.pk}")

    def allow(self, ident: str) -> bool:
        now = time.time()
        window = int(now // WINDOW_SECONDS)
        key = f"mk:throttle:{self.scope}:{ident}:{window}"
        pipe = get_redis().pipeline()
        pipe.incr(key)
        pipe.expire(key, WINDOW_SECONDS + 1)
        count, _ = pipe.execute()
        self._wait = (window + 1) * WINDOW_SECONDS - now
        return int(count) <= self.limit()

    def wait(self) -> float:
        return max(1.0, self._wait)


class CreateRateThrottle(ApiRateThrottle):
    """Prediction creates: ``API_RATE_LIMIT_CREATE`` per minute and caller."""

    scope = "create"

    def limit(self) -> int:
        return int(settings.API_RATE_LIMIT_CREATE)
