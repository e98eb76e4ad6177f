"""Secret inputs travel to the runner encrypted and are never stored in clear.

The database keeps the redacted input; the queued job carries the secret values encrypted with a
key derived from SECRET_KEY (Fernet: AES + HMAC), and the runner decrypts them just before it
sends the input to the model.
"""

from __future__ import annotations

import base64
import hashlib
import json
from functools import cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings


@cache
def _fernet() -> Fernet:
    key = hashlib.sha256(b"marketplace.prediction-secrets:" + settings.SECRET_KEY.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def seal(values: dict[str, Any]) -> str | None:
    if not values:
        return None
    return _fernet().encrypt(json.dumps(values).encode()).decode()


def unseal(blob: str | None) -> dict[str, Any]:
    if not blob:
        return {}
    try:
        return json.loads(_fernet().decrypt(blob.encode()))
    except InvalidToken as exc:
        raise ValueError("The prediction's secret inputs cannot be decrypted") from exc
