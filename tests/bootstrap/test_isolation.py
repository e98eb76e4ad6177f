"""The suite never uses what the shell exports for `make run` (tests/settings.py).

Each test loads the suite's settings in a fresh Python process with a shell environment of its own,
as `make test` or `pytest` would start in it, and reads back where the suite would put its data.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, django
django.setup()
from django.conf import settings
db = settings.DATABASES["default"]
print(json.dumps({
    "db": [db["ENGINE"], db["HOST"], db["PORT"], db["NAME"]],
    "redis": settings.REDIS_URL,
    "var_dir": str(settings.VAR_DIR),
    "media_root": str(settings.MEDIA_ROOT),
    "storage": settings.STORAGE_BACKEND,
    "stripe": settings.STRIPE_SECRET_KEY,
    "email": settings.EMAIL_BACKEND,
    "skip_docker": __import__("os").environ.get("MARKETPLACE_SKIP_DOCKER"),
}))
"""


def settings_in(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    shell = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "tests.settings", **env}
    return subprocess.run(
        [sys.executable, "-c", PROBE], env=shell, cwd=ROOT, capture_output=True, text=True
    )


def read(env: dict[str, str]) -> dict[str, object]:
    result = settings_in(env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_suite_ignores_what_the_shell_exports_for_make_run(tmp_path: Path) -> None:
    (tmp_path / "redis-url").write_text("redis://127.0.0.1:6379/3")
    run_shell = {
        "DATABASE_URL": "postgres://owner@db.example.com:5432/production",
        "REDIS_URL_FILE": str(tmp_path / "redis-url"),
        "VAR_DIR": str(tmp_path / "run-var"),
        "MEDIA_ROOT": str(tmp_path / "run-media"),
        "STORAGE_BACKEND": "s3",
        "S3_BUCKET": "the-real-bucket",
        "STRIPE_SECRET_KEY": "sk_live_real",
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "DEBUG": "0",
        # Test options pass through.
        "MARKETPLACE_SKIP_DOCKER": "1",
    }
    seen = read(
        {
            **run_shell,
            "TEST_DATABASE_URL": "postgres://postgres@127.0.0.1:5432/suite",
            "TEST_REDIS_URL": "redis://127.0.0.1:6379/15",
        }
    )
    assert seen["db"] == ["django.db.backends.postgresql", "127.0.0.1", 5432, "suite"]
    assert seen["redis"] == "redis://127.0.0.1:6379/15"
    assert seen["var_dir"] == str(ROOT / "var" / "test")
    assert seen["media_root"] == str(ROOT / "var" / "test" / "media")
    assert seen["storage"] == "filesystem"
    assert seen["stripe"] == ""
    assert seen["email"] == "django.core.mail.backends.console.EmailBackend"
    assert seen["skip_docker"] == "1"

    # Without TEST_* URLs: SQLite and the embedded Redis under var/test, still not make run's.
    seen = read(run_shell)
    assert seen["db"][0] == "django.db.backends.sqlite3"
    assert seen["redis"] == f"unix://{ROOT / 'var' / 'test' / 'redis' / 'redis.sock'}?db=0"


def test_processes_the_tests_start_keep_what_their_test_set() -> None:
    """They inherit the prepared environment (the marker) with their own settings on top."""
    seen = read(
        {
            "MARKETPLACE_TEST_ENV": "1",
            "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/suite",
            "REDIS_URL": "redis://127.0.0.1:6390/0",
            "STORAGE_BACKEND": "s3",
            "S3_BUCKET": "the-tests-moto-bucket",
        }
    )
    assert seen["db"][3] == "suite"
    assert seen["redis"] == "redis://127.0.0.1:6390/0"
    assert seen["storage"] == "s3"


def test_a_redis_database_the_suite_would_empty_for_someone_else_is_refused() -> None:
    run_redis = {"REDIS_URL": "redis://localhost:6379/15"}
    result = settings_in({**run_redis, "TEST_REDIS_URL": "redis://localhost:6379/15"})
    assert result.returncode != 0
    assert "is the Redis database of REDIS_URL (make run's)" in result.stderr
    assert read({**run_redis, "TEST_REDIS_URL": "redis://localhost:6379/14"})["redis"].endswith(
        "/14"
    )

    for database_zero in ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379"):
        result = settings_in({"TEST_REDIS_URL": database_zero})
        assert result.returncode != 0
        assert f"TEST_REDIS_URL={database_zero} is Redis database 0" in result.stderr


def test_a_test_database_that_is_make_runs_database_is_refused() -> None:
    suite = {"TEST_DATABASE_URL": "postgres://postgres@127.0.0.1:5432/work"}
    for run_database in ("work", "test_work"):
        result = settings_in(
            {**suite, "DATABASE_URL": f"postgres://me@127.0.0.1:5432/{run_database}"}
        )
        assert result.returncode != 0
        assert "the suite creates and drops that one" in result.stderr
    elsewhere = {"DATABASE_URL": "postgres://me@127.0.0.1:5433/test_work"}
    assert read({**suite, **elsewhere})["db"][3] == "work"
