"""Settings for the test suite: the project's settings with test-friendly environment defaults.

`make test` points DATABASE_URL at PostgreSQL and REDIS_URL at a Redis database of its own; without
them the suite falls back to SQLite and the embedded Redis. Worker processes that tests start use
these same settings (DJANGO_SETTINGS_MODULE=tests.settings) and TEST_DATABASE_NAME to reach the
test database.
"""

import os
from pathlib import Path

os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("SECRET_KEY", "test-secret-key-that-is-long-enough-for-the-checks")
os.environ.setdefault("VAR_DIR", str(Path(__file__).resolve().parent.parent / "var" / "test"))
os.environ.setdefault("AGENT_HEARTBEAT_SECONDS", "0.5")
# Test receivers (webhooks, file servers) listen on loopback; tests/security proves the refusal
# with this emptied. Set here so that the web, worker and agent processes tests start inherit it.
os.environ.setdefault("OUTBOUND_ALLOW_CIDRS", "127.0.0.0/8,::1/128")

from marketplace.settings import *  # noqa: F403
from marketplace.settings import DATABASES, VAR_DIR

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Worker processes must see the test database, so it lives in a file, not in memory.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}

if os.environ.get("TEST_DATABASE_NAME"):
    DATABASES["default"]["NAME"] = os.environ["TEST_DATABASE_NAME"]

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
