"""Hooks for the generated OpenAPI document of our own API (drf-spectacular)."""

from __future__ import annotations

from typing import Any


def drop_query_method(endpoints: list[tuple[str, str, str, Any]], **kwargs: Any) -> list[Any]:
    """OpenAPI 3.0 has no QUERY operation: ``QUERY /v1/models`` (search) is described in the
    document's description instead of as an operation."""
    return [endpoint for endpoint in endpoints if endpoint[2].upper() != "QUERY"]
