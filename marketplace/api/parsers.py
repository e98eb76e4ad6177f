"""The API's JSON door: every ``/v1`` JSON body passes through :class:`SafeJSONParser`.

Refused before any view sees them, each with a problem document naming the field: bodies larger
than ``API_MAX_BODY_BYTES`` (413), nesting deeper than ``jsonsafe.MAX_DEPTH``, and strings or
keys that cannot be stored (lone surrogates, NUL) anywhere in the body — input, webhook, metadata,
whatever the operation takes.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from rest_framework.parsers import JSONParser

from marketplace import jsonsafe
from marketplace.api.errors import Problem, invalid, too_large


class SafeJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        if stream is None:
            return None
        limit = settings.API_MAX_BODY_BYTES
        raw = stream.read(limit + 1)
        if len(raw) > limit:
            raise too_large(limit)
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            value = json.loads(raw.decode(encoding), parse_constant=json_constant)
        except RecursionError as exc:
            raise invalid("body", f"nested deeper than {jsonsafe.MAX_DEPTH} levels") from exc
        except ValueError as exc:  # also bad UTF-8 and NaN/Infinity
            raise Problem(400, f"JSON parse error - {exc}", "Invalid JSON") from exc
        refusal = jsonsafe.find_problem(value)
        if refusal is not None:
            raise invalid(refusal.field, refusal.description)
        return value


def json_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")
