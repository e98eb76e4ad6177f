"""What a bench script does before it imports the project: put the repository on ``sys.path``
and set production-like defaults (DEBUG off, so no query logging; a throwaway secret key; the
API rate limits lifted, because they are a policy, not overhead). Anything already in the
environment wins. Import it first: ``from _env import ROOT, percentile, prepare``."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def prepare(**extra: str) -> None:
    """Set the defaults, plus ``extra`` (e.g. ``INSTANCE_IDLE_TIMEOUT="600"``)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    defaults = {
        "DJANGO_SETTINGS_MODULE": "marketplace.settings",
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(40),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "VAR_DIR": str(ROOT / "var" / "bench"),
        "API_RATE_LIMIT_CREATE": "100000000",
        "API_RATE_LIMIT": "100000000",
        **extra,
    }
    for name, value in defaults.items():
        os.environ.setdefault(name, value)


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank ``q`` quantile (0 for no values)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0
