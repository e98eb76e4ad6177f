"""The site's synchronous middlewares, run with one thread hop each way instead of one per hook.

Django's own middlewares (sessions, CSRF, auth, messages, …) and django-csp's are
``MiddlewareMixin`` classes. Under ASGI each of their ``process_request``/``process_response``
hooks runs through its own ``sync_to_async`` hop into the request's thread and back: thirteen
hops per request for the ones listed in ``settings.SYNC_MIDDLEWARE``, each a thread wake-up
and a trip through the event loop (docs/architecture.md, "Web processes", has the figures).
:class:`SyncMiddlewareBlock` holds them in order and runs all their request hooks in one hop
and all their response hooks in another, with Django's semantics: a hook that answers ends the
request phase and its own response hook still runs; an exception in a hook becomes the error
response the outer middlewares then see, as Django's per-middleware wrapper would make it. Their
``process_view`` hooks run at the end of the request hop (the block resolves the URL itself,
as Django's handler then does), so they cost no hop of their own.

:class:`SecurityMiddleware` is Django's, with its two hooks run on the event loop: they read
the request and set headers, nothing that blocks, so the two hops Django's wrapper makes for
them are pure cost. Django's deploy checks of its settings look for Django's dotted path in
``MIDDLEWARE``; :func:`check_security_settings` runs them for this one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.core import checks
from django.core.checks.security import base as security_checks
from django.core.exceptions import ImproperlyConfigured, MiddlewareNotUsed
from django.core.handlers.exception import response_for_exception
from django.http import HttpRequest, HttpResponseBase
from django.middleware.security import SecurityMiddleware as DjangoSecurityMiddleware
from django.test.utils import override_settings
from django.urls import Resolver404, get_resolver
from django.utils.module_loading import import_string

UNSUPPORTED_HOOKS = ("process_exception", "process_template_response")
BLOCK = "marketplace.middleware.SyncMiddlewareBlock"
SECURITY = "marketplace.middleware.SecurityMiddleware"
DJANGO_SECURITY = "django.middleware.security.SecurityMiddleware"
# Where the block leaves the answer of its view hooks for its own process_view.
_VIEW_ANSWER = "_sync_block_view_answer"
# What Django's own checks (admin.E408-E410, security.W002/W003, silenced in settings) look for
# in MIDDLEWARE: with the block they must be in SYNC_MIDDLEWARE instead.
REQUIRED = (
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
)


@checks.register(checks.Tags.security, deploy=True)
def check_security_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Django's deploy checks of SecurityMiddleware's settings (HSTS, SSL redirect, nosniff,
    referrer and opener policies), made for :class:`SecurityMiddleware` as they would be for
    Django's (they look for its dotted path in ``MIDDLEWARE``; ``security.W001`` is silenced)."""
    if SECURITY not in settings.MIDDLEWARE or DJANGO_SECURITY in settings.MIDDLEWARE:
        return []
    with override_settings(MIDDLEWARE=[*settings.MIDDLEWARE, DJANGO_SECURITY]):
        found = [
            message
            for check in (
                security_checks.check_sts,
                security_checks.check_sts_include_subdomains,
                security_checks.check_sts_preload,
                security_checks.check_content_type_nosniff,
                security_checks.check_ssl_redirect,
                security_checks.check_referrer_policy,
                security_checks.check_cross_origin_opener_policy,
            )
            for message in check(app_configs)
        ]
    return found


class SecurityMiddleware(DjangoSecurityMiddleware):
    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.process_request(request)
        if response is None:
            response = await self.get_response(request)  # type: ignore[misc]
        return self.process_response(request, response)  # type: ignore[no-any-return]


@checks.register(checks.Tags.security)
def check_sync_middleware(**kwargs: Any) -> list[checks.CheckMessage]:
    """The checks settings silence, made again for the block (registered by ``ApiConfig``)."""
    if BLOCK not in settings.MIDDLEWARE:
        return []
    listed = set(getattr(settings, "SYNC_MIDDLEWARE", []))
    return [
        checks.Error(f"{path} must be in SYNC_MIDDLEWARE", id="marketplace.E001")
        for path in REQUIRED
        if path not in listed
    ]


class SyncMiddlewareBlock:
    async_capable = True
    sync_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
        self.middlewares: list[Any] = []
        for path in settings.SYNC_MIDDLEWARE:
            try:
                middleware = import_string(path)(get_response)
            except MiddlewareNotUsed:
                continue
            if any(hasattr(middleware, hook) for hook in UNSUPPORTED_HOOKS):
                raise ImproperlyConfigured(f"{path}: SYNC_MIDDLEWARE takes no {UNSUPPORTED_HOOKS}")
            self.middlewares.append(middleware)
        self.view_hooks = [m.process_view for m in self.middlewares if hasattr(m, "process_view")]
        if self.is_async and self.view_hooks:
            # Django calls process_view on the event loop when it is a coroutine function.
            self.process_view = self._aprocess_view  # type: ignore[method-assign,assignment]

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        response, ran = self._requests(request)
        if response is None:
            response = self.get_response(request)
        return self._responses(request, response, ran)

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        response, ran = await sync_to_async(self._requests_and_views, thread_sensitive=True)(
            request
        )
        if response is None:
            response = await self.get_response(request)
        return await sync_to_async(self._responses, thread_sensitive=True)(request, response, ran)

    def _requests_and_views(self, request: HttpRequest) -> tuple[HttpResponseBase | None, int]:
        """The request hooks, then (if none answered) the view hooks for the view the path
        resolves to, whose answer ``_aprocess_view`` hands to Django's handler."""
        response, ran = self._requests(request)
        if response is None and self.view_hooks:
            try:
                match = get_resolver(getattr(request, "urlconf", None)).resolve(request.path_info)
            except Resolver404:
                return None, ran  # Django's handler answers 404 before any view hook
            setattr(
                request,
                _VIEW_ANSWER,
                self._view_hooks(request, match.func, match.args, match.kwargs),
            )
        return response, ran

    async def _aprocess_view(
        self, request: HttpRequest, view: Callable[..., Any], args: Any, kwargs: Any
    ) -> HttpResponseBase | None:
        if hasattr(request, _VIEW_ANSWER):
            return getattr(request, _VIEW_ANSWER)  # type: ignore[no-any-return]
        # Not resolved in the request hop (a request hook changed the path or the urlconf).
        return await sync_to_async(self._view_hooks, thread_sensitive=True)(
            request, view, args, kwargs
        )

    def _requests(self, request: HttpRequest) -> tuple[HttpResponseBase | None, int]:
        """Request hooks in order: (an early response or None, how many middlewares' response
        hooks apply)."""
        for index, middleware in enumerate(self.middlewares):
            hook = getattr(middleware, "process_request", None)
            if hook is None:
                continue
            try:
                response = hook(request)
            except Exception as exc:
                # Django's wrapper around this middleware turns it into a response that only
                # the middlewares outside it see.
                return response_for_exception(request, exc), index
            if response is not None:
                return response, index + 1
        return None, len(self.middlewares)

    def _responses(
        self, request: HttpRequest, response: HttpResponseBase, ran: int
    ) -> HttpResponseBase:
        for middleware in reversed(self.middlewares[:ran]):
            hook = getattr(middleware, "process_response", None)
            if hook is None:
                continue
            try:
                response = hook(request, response)
            except Exception as exc:
                response = response_for_exception(request, exc)
        return response

    def process_view(
        self, request: HttpRequest, view: Callable[..., Any], args: Any, kwargs: Any
    ) -> HttpResponseBase | None:
        return self._view_hooks(request, view, args, kwargs)

    def _view_hooks(
        self, request: HttpRequest, view: Callable[..., Any], args: Any, kwargs: Any
    ) -> HttpResponseBase | None:
        for hook in self.view_hooks:
            response = hook(request, view, args, kwargs)
            if response is not None:
                return response  # type: ignore[no-any-return]
        return None
