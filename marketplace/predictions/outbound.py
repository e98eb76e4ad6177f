"""Which URLs in a prediction the platform or its model servers will request, and whether they may.

A ``webhook`` is posted to by the webhook workers; a URL-valued input (Cog's ``Path``, schema
``format: uri``) is downloaded by the model server. Both are checked with
:mod:`marketplace.netguard` when the prediction is created, so an internal address is a 422 naming
the field and nothing is stored. The platform's own file URLs (``/v1/files/…`` and ``/files/…``
under ``PUBLIC_URL``) are exempt: they are what uploads become, and they may well be on loopback
in a self-hosted setup.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from marketplace import netguard
from marketplace.catalog.schema import FieldError, input_properties


def is_own_file_url(url: str) -> bool:
    return url.startswith(
        (f"{settings.PUBLIC_URL}/v1/files/", f"{settings.PUBLIC_URL}{settings.MEDIA_URL}")
    )


def _is_uri(prop: Any) -> bool:
    return isinstance(prop, dict) and prop.get("format") == "uri"


def url_inputs(openapi: dict[str, Any], payload: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, url) for every http(s) URL given to a URL-valued input (files, lists of files)."""
    found: list[tuple[str, str]] = []
    for name, prop in input_properties(openapi).items():
        value = payload.get(name)
        if _is_uri(prop) and isinstance(value, str):
            found.append((f"input.{name}", value))
        elif isinstance(prop, dict) and _is_uri(prop.get("items")) and isinstance(value, list):
            found.extend(
                (f"input.{name}.{i}", v) for i, v in enumerate(value) if isinstance(v, str)
            )
    return [
        (field, url)
        for field, url in found
        if url.startswith(("http://", "https://")) and not is_own_file_url(url)
    ]


def _refusal(field: str, url: str) -> FieldError | None:
    try:
        # A name that does not resolve now is no danger now; delivery checks again.
        netguard.check_url(url, unresolvable_ok=True)
    except netguard.Refused as exc:
        return FieldError(field, "url", f"{field.removeprefix('input.')}: {exc}")
    return None


def check(openapi: dict[str, Any], payload: dict[str, Any], webhook: str) -> list[FieldError]:
    """Refusals for the webhook and URL inputs of a prediction about to be created."""
    pairs = url_inputs(openapi, payload)
    if webhook:
        pairs.insert(0, ("webhook", webhook))
    return [error for field, url in pairs if (error := _refusal(field, url)) is not None]


def check_dispatch(openapi: dict[str, Any], payload: dict[str, Any]) -> str | None:
    """Just before a model server gets the input: the URLs again (a name may resolve elsewhere
    now). The model server downloads them itself, so this narrows the window rather than pinning
    the address; an egress firewall closes it."""
    for field, url in url_inputs(openapi, payload):
        try:
            netguard.check_url(url)
        except netguard.Refused as exc:
            return f"The input {field} was refused: {exc}"
    return None
