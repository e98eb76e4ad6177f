"""Timestamps as the API writes them: ISO 8601 in UTC with a ``Z``, as Replicate does."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
