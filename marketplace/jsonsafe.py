"""JSON that is safe to store and to send back: bounded nesting and real Unicode only.

``"\\ud800"`` is valid JSON but not a character: Python decodes it to a lone surrogate, which no
UTF-8 encoder accepts. Stored, it made every page and listing that showed it fail. ``"\\u0000"``
is a character PostgreSQL cannot store in text or ``jsonb``. So what callers
send is refused at the door (:func:`find_problem`, by the API's JSON parser and every other place
that decodes caller JSON), and what models produce or what was stored earlier is repaired
(:func:`scrub`, in :class:`SafeJSONEncoder` on the way into the database and
:class:`SafeJSONDecoder` on the way out). Nesting is bounded because the walkers that follow
(validation, file references, rendering) recurse.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

# Deeper than any Cog schema or input needs, shallow enough for every recursive walker.
MAX_DEPTH = 64

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# How those look in JSON text: the only way one reaches the database.
_ESCAPED = re.compile(r"\\u(?:[dD][89a-fA-F][0-9a-fA-F]{2}|0000)")


@dataclass(frozen=True)
class Refusal:
    field: str
    description: str
    # The text was not JSON at all (rather than JSON we refuse).
    not_json: bool = False


def has_unstorable(text: str) -> bool:
    """Whether ``text`` holds a lone surrogate or a NUL (what cannot be encoded or stored)."""
    return _UNSTORABLE.search(text) is not None


def find_problem(value: Any, field: str = "", max_depth: int = MAX_DEPTH) -> Refusal | None:
    """The first thing (field path, description) that makes ``value`` unsafe, or None.

    Iterative, so a value nested far too deep is reported rather than exhausting the stack.
    """
    stack: list[tuple[Any, str, int]] = [(value, field, 1)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            if has_unstorable(item):
                return Refusal(path or "body", _unstorable_message(item, "a string"))
            continue
        if not isinstance(item, dict | list):
            continue
        if depth > max_depth:
            return Refusal(path or "body", f"nested deeper than {max_depth} levels")
        if isinstance(item, dict):
            for key, sub in item.items():
                sub_path = f"{path}.{key}" if path else str(key)
                if has_unstorable(str(key)):
                    return Refusal(path or "body", _unstorable_message(str(key), "a key"))
                stack.append((sub, sub_path, depth + 1))
        else:
            stack.extend(
                (sub, f"{path}.{i}" if path else str(i), depth + 1) for i, sub in enumerate(item)
            )
    return None


def _unstorable_message(text: str, where: str) -> str:
    if "\x00" in text:
        return f"{where} contains a NUL character (\\u0000), which cannot be stored"
    return (
        f"{where} contains a lone UTF-16 surrogate (\\ud800-\\udfff), which is not a character "
        "and cannot be stored; send valid Unicode"
    )


def loads(text: str | bytes, field: str = "body") -> tuple[Any, Refusal | None]:
    """Decode caller JSON: (value, None), or (None, refusal) when it is not valid JSON, is nested
    too deep, or holds strings that cannot be stored. Never raises for bad input."""
    try:
        value = json.loads(text)
    except RecursionError:
        return None, Refusal(field, f"nested deeper than {MAX_DEPTH} levels")
    except ValueError as exc:
        return None, Refusal(field, f"not valid JSON ({exc})", not_json=True)
    problem = find_problem(value, "" if field == "body" else field)
    return (None, problem) if problem else (value, None)


def scrub(value: Any) -> Any:
    """``value`` with every lone surrogate and NUL replaced by U+FFFD (valid pairs are joined)."""
    if isinstance(value, str):
        if not has_unstorable(value):
            return value
        joined = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return joined.replace("\x00", "\ufffd")
    if isinstance(value, list):
        return [scrub(v) for v in value]
    if isinstance(value, dict):
        return {scrub(k): scrub(v) for k, v in value.items()}
    return value


class SafeJSONEncoder(json.JSONEncoder):
    """For JSON model fields: a lone surrogate a model produced is stored as U+FFFD (PostgreSQL
    would refuse the row; SQLite would keep something no page can render)."""

    def encode(self, o: Any) -> str:
        return super().encode(scrub(o))


class SafeJSONDecoder(json.JSONDecoder):
    """For JSON model fields: rows stored before the door was closed render (U+FFFD) instead of
    failing every page that shows them. Only text holding an escaped surrogate is walked."""

    def decode(self, s: str, *args: Any, **kwargs: Any) -> Any:
        value = super().decode(s, *args, **kwargs)
        return scrub(value) if _ESCAPED.search(s) else value
