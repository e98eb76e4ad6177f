"""``SyncMiddlewareBlock`` keeps Django's middleware semantics while it runs the hooks of
``SYNC_MIDDLEWARE`` together, on the sync path (WSGI, the test client) and the async one."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.http import HttpRequest, HttpResponse
from django.test import AsyncClient, Client
from django.utils.deprecation import MiddlewareMixin

CALLS: list[str] = []


class Outer(MiddlewareMixin):
    def process_request(self, request: HttpRequest) -> None:
        CALLS.append("outer request")

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        CALLS.append("outer response")
        response["X-Outer"] = "1"
        return response


class Raising(MiddlewareMixin):
    def process_request(self, request: HttpRequest) -> None:
        if request.path == "/boom-in-middleware":
            raise RuntimeError("boom")

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        CALLS.append("raising response")
        return response


class Answering(MiddlewareMixin):
    def process_request(self, request: HttpRequest) -> HttpResponse | None:
        return HttpResponse("early") if request.path == "/early" else None

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        CALLS.append("answering response")
        return response


class Inner(MiddlewareMixin):
    def process_request(self, request: HttpRequest) -> None:
        CALLS.append("inner request")


MODULE = __name__


@pytest.fixture
def block(settings: Any) -> None:
    settings.SYNC_MIDDLEWARE = [
        f"{MODULE}.Outer",
        f"{MODULE}.Raising",
        f"{MODULE}.Answering",
        f"{MODULE}.Inner",
        # The real ones still work inside the block: CSRF refuses a form post without a token.
        "django.middleware.csrf.CsrfViewMiddleware",
    ]
    settings.DEBUG_PROPAGATE_EXCEPTIONS = False
    CALLS.clear()


def _request(method: str, path: str, is_async: bool, **options: Any) -> Any:
    """The sync test client, or the async one (Django's ASGI handler) driven to completion."""
    if is_async:
        return async_to_sync(getattr(AsyncClient(**options), method))(path)
    return getattr(Client(**options), method)(path)


@pytest.mark.django_db
@pytest.mark.parametrize("is_async", [False, True])
def test_an_early_answer_skips_the_rest_and_still_gets_its_own_response_hook(
    block: None, is_async: bool
) -> None:
    response = _request("get", "/early", is_async)
    assert response.content == b"early" and response["X-Outer"] == "1"
    assert CALLS == ["outer request", "answering response", "raising response", "outer response"]


@pytest.mark.django_db
@pytest.mark.parametrize("is_async", [False, True])
def test_an_exception_in_a_hook_is_an_error_response_for_the_middlewares_outside(
    block: None, is_async: bool
) -> None:
    response = _request("get", "/boom-in-middleware", is_async, raise_request_exception=False)
    assert response.status_code == 500 and response["X-Outer"] == "1"
    # The raising middleware's own response hook does not run (Django's wrapper is outside it).
    assert CALLS == ["outer request", "outer response"]


@pytest.mark.django_db
@pytest.mark.parametrize("is_async", [False, True])
def test_view_hooks_still_run(block: None, is_async: bool) -> None:
    response = _request("post", "/account/login", is_async, enforce_csrf_checks=True)
    assert response.status_code == 403  # CsrfViewMiddleware.process_view refused it
    assert CALLS[:2] == ["outer request", "inner request"]
    assert CALLS[-1] == "outer response"


def test_the_checks_django_no_longer_makes_are_made_for_the_block(settings: Any) -> None:
    from django.core.checks import run_checks

    assert not [m for m in run_checks() if m.id == "marketplace.E001"]
    settings.SYNC_MIDDLEWARE = [
        p for p in settings.SYNC_MIDDLEWARE if p != "django.middleware.csrf.CsrfViewMiddleware"
    ]
    errors = [m for m in run_checks() if m.id == "marketplace.E001"]
    assert [e.msg for e in errors] == [
        "django.middleware.csrf.CsrfViewMiddleware must be in SYNC_MIDDLEWARE"
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("is_async", [False, True])
def test_security_headers_are_set_with_the_hooks_on_the_event_loop(
    settings: Any, is_async: bool
) -> None:
    settings.SECURE_REFERRER_POLICY = "same-origin"
    for path in ("/", "/v1/predictions", "/static/does-not-exist.css"):
        response = _request("get", path, is_async)
        assert response["X-Content-Type-Options"] == "nosniff", path
        assert response["Referrer-Policy"] == "same-origin", path


@pytest.mark.django_db
@pytest.mark.parametrize("is_async", [False, True])
def test_the_ssl_redirect_still_happens(settings: Any, is_async: bool) -> None:
    settings.SECURE_SSL_REDIRECT = True
    response = _request("get", "/explore", is_async)
    assert response.status_code == 301 and response["Location"].startswith("https://")


def test_djangos_deploy_checks_of_the_security_settings_still_run(settings: Any) -> None:
    from django.core.checks import run_checks

    settings.SECURE_HSTS_SECONDS = 0
    settings.SECURE_SSL_REDIRECT = False
    ids = {m.id for m in run_checks(include_deployment_checks=True)}
    assert {"security.W004", "security.W008"} <= ids
    settings.SECURE_HSTS_SECONDS = 3600
    settings.SECURE_SSL_REDIRECT = True
    ids = {m.id for m in run_checks(include_deployment_checks=True)}
    assert not {"security.W004", "security.W008"} & ids
