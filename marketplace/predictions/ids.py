from __future__ import annotations

import base64
import secrets
import uuid


def new_prediction_id() -> str:
    """26 lowercase base32 characters from a random UUID, the shape Replicate's ids have."""
    return base64.b32encode(uuid.uuid4().bytes).decode().rstrip("=").lower()


def new_capability_token() -> str:
    """An unguessable path segment for URLs that are their own authorisation."""
    return secrets.token_urlsafe(24)
