"""Echo a digest of every input, one per kind of form widget.

Useful to check that a form, the API and input validation agree. The secret is never echoed:
only its length and a short SHA-256 prefix are reported.
"""

import hashlib
import json

from cog import BasePredictor, Input, Secret


class Predictor(BasePredictor):
    def predict(
        self,
        count: int = Input(description="An integer between 1 and 10", default=3, ge=1, le=10),
        temperature: float = Input(
            description="A number between 0 and 2", default=0.7, ge=0.0, le=2.0
        ),
        shout: bool = Input(description="Upper-case the greeting", default=False),
        color: str = Input(
            description="A string choice", default="green", choices=["red", "green", "blue"]
        ),
        level: int = Input(description="An integer choice", default=2, choices=[1, 2, 3]),
        api_token: Secret = Input(
            description="A secret: redacted after use, never echoed", default=None
        ),
        tags: list[str] = Input(description="A list of strings", default=["alpha", "beta"]),
        note: str | None = Input(description="Optional text; may be left out", default=None),
        name: str = Input(description="At most 20 characters", default="world", max_length=20),
        code: str = Input(
            description="Two capitals, a dash, two digits",
            default="AB-12",
            regex=r"^[A-Z]{2}-\d{2}$",
        ),
        legacy_mode: bool = Input(
            description="Deprecated: kept for old clients, has no effect",
            default=False,
            deprecated=True,
        ),
    ) -> str:
        secret = api_token.get_secret_value() if api_token is not None else None
        if secret is None:
            masked = "not given"
        else:
            digest = hashlib.sha256(secret.encode()).hexdigest()[:8]
            masked = f"{len(secret)} chars, sha256 {digest}…"
        greeting = f"hello {name}"
        summary = {
            "greeting": greeting.upper() if shout else greeting,
            "count": count,
            "temperature": temperature,
            "shout": shout,
            "color": color,
            "level": level,
            "api_token": masked,
            "tags": tags,
            "note": note,
            "code": code,
            "legacy_mode": legacy_mode,
        }
        return json.dumps(summary, ensure_ascii=False, indent=2)
