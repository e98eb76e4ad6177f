"""Settings for the test suite: the project's settings with test-friendly environment defaults.

The suite runs on its own database, Redis database and files whatever the shell exports for
`make run` or production: every project variable (each one in .env.example above its "Tests and
benchmarks" section, and its ``_FILE`` form) is dropped, then DATABASE_URL and REDIS_URL are set
from TEST_DATABASE_URL and TEST_REDIS_URL (`make test` passes them; without them: SQLite and the
embedded Redis under var/test). A TEST_REDIS_URL that is Redis database 0 or the REDIS_URL the shell
exports, or a TEST_DATABASE_URL whose test database is the exported DATABASE_URL's, is refused: the
suite empties the one and drops the other.

Processes the tests start (web servers, workers, agents) use these settings too; they inherit the
prepared environment, marked by MARKETPLACE_TEST_ENV, and keep what their test set on top of it.
TEST_DATABASE_NAME points them at the test database.
"""

import os
import re
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

ROOT = Path(__file__).resolve().parent.parent


def _project_variables() -> set[str]:
    text = (ROOT / ".env.example").read_text().split("# --- Tests and benchmarks")[0]
    names = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", text, re.M))
    return names | {f"{name}_FILE" for name in names}


def _refuse_shared_data(run_env: dict[str, str]) -> None:
    import dj_database_url
    from redis.connection import parse_url

    def redis_target(url: str) -> tuple[object, ...]:
        parts = parse_url(url)
        return (parts.get("path") or parts.get("host"), parts.get("port", 6379), parts.get("db", 0))

    test_redis = os.environ.get("TEST_REDIS_URL")
    if test_redis:
        target = redis_target(test_redis)
        if target[2] == 0:
            raise ImproperlyConfigured(
                f"TEST_REDIS_URL={test_redis} is Redis database 0: the suite empties its "
                "database, so give it one of its own (e.g. redis://127.0.0.1:6379/15)"
            )
        if run_env.get("REDIS_URL") and redis_target(run_env["REDIS_URL"]) == target:
            raise ImproperlyConfigured(
                f"TEST_REDIS_URL={test_redis} is the Redis database of REDIS_URL (make run's): "
                "the suite empties it; give the suite another database number"
            )
    test_db, run_db = os.environ.get("TEST_DATABASE_URL"), run_env.get("DATABASE_URL")
    if test_db and run_db:
        test, run = dj_database_url.parse(test_db), dj_database_url.parse(run_db)
        same_server = (test["HOST"], test["PORT"]) == (run["HOST"], run["PORT"])
        if same_server and run["NAME"] in {test["NAME"], f"test_{test['NAME']}"}:
            raise ImproperlyConfigured(
                f"TEST_DATABASE_URL={test_db} is the database of DATABASE_URL (make run's), or "
                f"its test database test_{test['NAME']} is: the suite creates and drops that one"
            )


if not os.environ.get("MARKETPLACE_TEST_ENV"):
    _run_env = {name: os.environ.pop(name) for name in _project_variables() if name in os.environ}
    _refuse_shared_data(_run_env)
    for _name in ("DATABASE_URL", "REDIS_URL"):
        if os.environ.get(f"TEST_{_name}"):
            os.environ[_name] = os.environ[f"TEST_{_name}"]
    os.environ["MARKETPLACE_TEST_ENV"] = "1"

os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("SECRET_KEY", "test-secret-key-that-is-long-enough-for-the-checks")
os.environ.setdefault("VAR_DIR", str(ROOT / "var" / "test"))
os.environ.setdefault("AGENT_HEARTBEAT_SECONDS", "0.5")
# Test receivers (webhooks, file servers) listen on loopback; tests/security proves the refusal
# with this emptied. Set here so that the web, worker and agent processes tests start inherit it.
os.environ.setdefault("OUTBOUND_ALLOW_CIDRS", "127.0.0.0/8,::1/128")

from marketplace.settings import *  # noqa: E402, F403
from marketplace.settings import DATABASES, VAR_DIR  # noqa: E402

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Worker processes must see the test database, so it lives in a file, not in memory.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}

if os.environ.get("TEST_DATABASE_NAME"):
    DATABASES["default"]["NAME"] = os.environ["TEST_DATABASE_NAME"]

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
