"""Typed access to environment variables that fails loudly on bad values.

Every variable may also be given as ``<NAME>_FILE`` pointing at a file that holds the value (how
Docker and systemd pass secrets). Every variable read here is documented in ``.env.example``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import TypeVar

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}

N = TypeVar("N", int, float)


def envstr(name: str, default: str | None = None) -> str | None:
    file_path = os.environ.get(f"{name}_FILE")
    if file_path:
        try:
            with open(file_path, encoding="utf-8") as fh:
                return fh.read().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={file_path!r} cannot be read: {exc}") from exc
    return os.environ.get(name, default)


def envbool(name: str, default: bool) -> bool:
    raw = envstr(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use 1/0, true/false, yes/no)")


def _envnumber(name: str, default: N, parse: Callable[[str], N], kind: str, minimum: N | None) -> N:
    raw = envstr(name)
    if raw is None or raw == "":
        return default
    try:
        value = parse(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}={raw!r} is not {kind}") from exc
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} must be at least {minimum}")
    return value


def envint(name: str, default: int, *, minimum: int | None = None) -> int:
    return _envnumber(name, default, int, "an integer", minimum)


def envfloat(name: str, default: float, *, minimum: float | None = None) -> float:
    return _envnumber(name, default, float, "a number", minimum)


def envlist(name: str, default: str = "") -> list[str]:
    raw = envstr(name, default) or ""
    return [item.strip() for item in raw.split(",") if item.strip()]


def envdecimal(
    name: str,
    default: str,
    *,
    minimum: str | None = None,
    maximum: str | None = None,
    places: int | None = None,
) -> Decimal:
    """An exact decimal (money, percentages), with at most ``places`` decimal places."""
    raw = (envstr(name) or "").strip() or default
    try:
        value = Decimal(raw)
    except InvalidOperation as exc:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a decimal number") from exc
    if not value.is_finite():
        raise ImproperlyConfigured(f"{name}={raw!r} is not a decimal number")
    if minimum is not None and value < Decimal(minimum):
        raise ImproperlyConfigured(f"{name}={value} must be at least {minimum}")
    if maximum is not None and value > Decimal(maximum):
        raise ImproperlyConfigured(f"{name}={value} must be at most {maximum}")
    if places is not None and value != value.quantize(Decimal(1).scaleb(-places)):
        raise ImproperlyConfigured(f"{name}={value} has more than {places} decimal places")
    return value
