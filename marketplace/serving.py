"""What ``manage.py serve`` hands its ASGI server: ``marketplace.asgi:application``, as it is.

uvicorn loads it by name and handles proxy headers itself. granian has no proxy-header option,
so its workers load the application through :func:`granian_loader`, which wraps it with granian's
own ``X-Forwarded-For``/``X-Forwarded-Proto`` handling for the addresses in
``FORWARDED_ALLOW_IPS`` (what uvicorn's ``forwarded_allow_ips`` gets too).

Neither server delivers the ASGI lifespan: Django refuses that scope (each server would log so
per worker at every start), and nothing the application mounts (``/mcp`` included) needs it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from marketplace.env import envstr

TARGET = "marketplace.asgi:application"

ASGIApp = Callable[..., Awaitable[None]]


def forwarded_allow_ips() -> str:
    """Proxies whose forwarded headers are believed (comma-separated, ``*`` for any)."""
    return envstr("FORWARDED_ALLOW_IPS") or "127.0.0.1"


def granian_loader(target: str) -> ASGIApp:
    """granian's ``target_loader`` (runs in each worker process)."""
    from granian._internal import load_target  # type: ignore[import-untyped]
    from granian.utils.proxies import wrap_asgi_with_proxy_headers  # type: ignore[import-untyped]

    loaded: Any = load_target(target)
    return wrap_asgi_with_proxy_headers(loaded, forwarded_allow_ips())  # type: ignore[no-any-return]
