"""What a string says about our stored files: nothing but where to look (pure, no database).

Two URL forms point at files the platform stores, under ``PUBLIC_URL``:

- ``/files/<name>``: a stored file by its storage name; bare (the *reference* the database
  keeps), or signed (``?expires=&signature=``, what ``storage.signed_url`` hands out);
- ``/v1/files/<id>``: a ``/v1/files`` upload; bare (needs the owner's token), or its signed
  download URL (``/download/<name>?owner=&expiry=&signature=``).

A currently valid signature is the only thing a string can prove by itself (we made it, and it
has not expired). Everything else — bare, expired, forged — is a question for the ownership rows
(:mod:`marketplace.files.access`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qs

from django.conf import settings

from marketplace import storage

STORED: Literal["stored"] = "stored"
UPLOAD: Literal["upload"] = "upload"


@dataclass(frozen=True)
class Ref:
    kind: Literal["stored", "upload"]
    # The storage name (stored) or the /v1/files id (upload).
    key: str
    # A signature we made that has not expired: the URL grants access by itself until then.
    valid: bool


def _query(query: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items() if v}


def parse(text: str) -> Ref | None:
    """The stored file or upload ``text`` points at, or None for any other string."""
    files_prefix = f"{settings.PUBLIC_URL}{settings.MEDIA_URL}"
    api_prefix = f"{settings.PUBLIC_URL}/v1/files/"
    if text.startswith(files_prefix):
        name, signed, query = text[len(files_prefix) :].partition("?")
        if not name:
            return None
        params = _query(query) if signed else {}
        valid = bool(signed) and (
            storage.check_signature(name, params.get("expires", ""), params.get("signature", ""))
            is True
        )
        return Ref(STORED, name, valid)
    if text.startswith(api_prefix):
        rest = text[len(api_prefix) :]
        file_id = rest.split("/", 1)[0].split("?", 1)[0]
        if not file_id:
            return None
        tail = rest[len(file_id) :]
        valid = False
        if tail.startswith("/download") and "?" in tail:
            from marketplace.predictions.uploads import signature_valid

            params = _query(tail.split("?", 1)[1])
            valid = signature_valid(
                params.get("owner", ""),
                file_id,
                params.get("expiry", ""),
                params.get("signature", ""),
            )
        return Ref(UPLOAD, file_id, valid)
    return None


def strings(value: Any, path: str = "input") -> Iterator[tuple[str, str]]:
    """(field path, string) for every string inside a JSON value."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, sub in value.items():
            yield from strings(sub, f"{path}.{key}")
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            yield from strings(sub, f"{path}.{i}")


def refs(value: Any, path: str = "input") -> list[tuple[str, str, Ref]]:
    """(field path, string, reference) for every string in ``value`` that points at our files."""
    return [(p, text, ref) for p, text in strings(value, path) if (ref := parse(text)) is not None]


def replace(value: Any, replacements: dict[str, str]) -> Any:
    """``value`` with every string that is a key of ``replacements`` replaced."""
    if not replacements:
        return value
    if isinstance(value, str):
        return replacements.get(value, value)
    if isinstance(value, list):
        return [replace(v, replacements) for v in value]
    if isinstance(value, dict):
        return {k: replace(v, replacements) for k, v in value.items()}
    return value
