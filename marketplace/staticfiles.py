"""WhiteNoise for the static files only, without making every request synchronous.

WhiteNoise's middleware is synchronous, and one synchronous middleware makes Django run the
whole chain around it in a worker thread and hop back to the event loop for the rest: every
API request (and every ``Prefer: wait`` it holds) paid two thread hops and pinned a thread. This
wrapper is async-capable: requests under ``STATIC_URL`` go to WhiteNoise (in a thread when
async), everything else goes straight on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from whitenoise.middleware import WhiteNoiseMiddleware


class StaticFilesMiddleware:
    async_capable = True
    sync_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
        # Finds and serves files only: a static path it does not know is the site's 404.
        self.whitenoise = WhiteNoiseMiddleware(_not_found)
        self.prefix = settings.STATIC_URL

    def __call__(self, request: HttpRequest) -> HttpResponse | Awaitable[HttpResponse]:
        if self.is_async:
            return self._acall(request)
        if request.path_info.startswith(self.prefix):
            response: HttpResponse | None = self.whitenoise(request)
            if response is not None:
                return response
        return self.get_response(request)  # type: ignore[no-any-return]

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        if request.path_info.startswith(self.prefix):
            response: HttpResponse | None = await sync_to_async(self.whitenoise)(request)
            if response is not None:
                return response
        return await self.get_response(request)  # type: ignore[no-any-return]


def _not_found(request: HttpRequest) -> None:
    return None
