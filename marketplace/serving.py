"""What ``manage.py serve`` hands its ASGI server: ``marketplace.asgi:application``, as it is.

uvicorn loads it by name and handles proxy headers itself. granian has no proxy-header option,
so its workers load the application through :func:`granian_loader`, which wraps it with granian's
own ``X-Forwarded-For``/``X-Forwarded-Proto`` handling for the addresses in
``FORWARDED_ALLOW_IPS`` (what uvicorn's ``--forwarded-allow-ips`` reads too).

Django's handler refuses the ASGI ``lifespan`` scope, and both servers then log that lifespan is
unsupported and go on. Whatever ``marketplace.asgi`` mounts beside Django may want startup and
shutdown, so the servers run lifespan, and a bare Django handler gets it answered here instead
of a warning per worker at every start.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from django.core.handlers.asgi import ASGIHandler

from marketplace.env import envstr

TARGET = "marketplace.asgi:application"

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[..., Awaitable[None]]


def forwarded_allow_ips() -> str:
    """Proxies whose forwarded headers are believed (comma-separated, ``*`` for any)."""
    return envstr("FORWARDED_ALLOW_IPS") or "127.0.0.1"


def with_lifespan(app: ASGIApp) -> ASGIApp:
    """``app``, answering the lifespan scope itself when ``app`` is a bare Django handler."""
    if not isinstance(app, ASGIHandler):
        return app
    django: Any = app

    async def application(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            return await django(scope, receive, send)  # type: ignore[no-any-return]
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    return application


def granian_loader(target: str) -> ASGIApp:
    """granian's ``target_loader`` (runs in each worker process)."""
    from granian._internal import load_target  # type: ignore[import-untyped]
    from granian.utils.proxies import wrap_asgi_with_proxy_headers  # type: ignore[import-untyped]

    loaded: Any = load_target(target)
    return wrap_asgi_with_proxy_headers(with_lifespan(loaded), forwarded_allow_ips())  # type: ignore[no-any-return]


def uvicorn_application() -> ASGIApp:
    """uvicorn's factory (runs in each worker process)."""
    from uvicorn.importer import import_from_string

    return with_lifespan(import_from_string(TARGET))
