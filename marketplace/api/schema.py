"""Hooks for the generated OpenAPI document of our own API (drf-spectacular)."""

from __future__ import annotations

from typing import Any


def drop_query_method(endpoints: list[tuple[str, str, str, Any]], **kwargs: Any) -> list[Any]:
    """OpenAPI 3.0 has no QUERY operation: ``QUERY /v1/models`` (search) is described in the
    document's description instead of as an operation."""
    return [endpoint for endpoint in endpoints if endpoint[2].upper() != "QUERY"]


PROBLEM = {
    "type": "object",
    "description": (
        "An RFC 9457 problem document; 400s and 422s add `invalid_fields` naming each field (the "
        "first 20; `invalid_fields_count` says how many there were when that is more)."
    ),
    "properties": {
        "title": {"type": "string"},
        "detail": {"type": "string"},
        "status": {"type": "integer"},
        "invalid_fields": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "type": {"type": "string"},
                    "field": {"type": "string"},
                    "description": {"type": "string"},
                },
            },
        },
        "invalid_fields_count": {"type": "integer"},
    },
    "required": ["title", "detail", "status"],
}


def document_errors(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Every operation may answer an error (401, 404, 422, 429, ...) as a problem document:
    say so with a ``default`` response, so clients and fuzzers know the shape of every error."""
    result.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM
    default = {
        "description": "An error, as application/problem+json",
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        },
    }
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            if isinstance(operation, dict) and "responses" in operation:
                operation["responses"].setdefault("default", default)
    return result
