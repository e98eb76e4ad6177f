"""Settings: environment-driven, loud about bad values, strict when DEBUG is off."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_env_example_documents_every_variable_the_code_reads() -> None:
    source = "\n".join(
        p.read_text()
        for p in [*(ROOT / "marketplace").rglob("*.py"), *(ROOT / "workers").rglob("*.py")]
    )
    used = set(re.findall(r"\benv(?:str|bool|int|float|decimal|list)\(\s*\"([A-Z0-9_]+)\"", source))
    documented = set(re.findall(r"^([A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert used, "the scan found no variables"
    assert used - documented == set()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DEBUG": "0"}, "SECRET_KEY must be set"),
        ({"DEBUG": "0", "SECRET_KEY": "x" * 50}, "ALLOWED_HOSTS"),
        ({"DEBUG": "0", "SECRET_KEY": "short", "ALLOWED_HOSTS": "example.com"}, "at least 32"),
        ({"DEBUG": "maybe"}, "not a boolean"),
    ],
)
def test_production_settings_refuse_insecure_defaults(env: dict[str, str], message: str) -> None:
    clean = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "marketplace.settings", **env}
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env=clean,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert message in result.stderr


def test_production_settings_start_with_real_values(tmp_path: object) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "DJANGO_SETTINGS_MODULE": "marketplace.settings",
        "DEBUG": "0",
        "SECRET_KEY": "k" * 50,
        "ALLOWED_HOSTS": "models.example.com",
        "VAR_DIR": str(tmp_path),
    }
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); "
            "from django.conf import settings; print(settings.DEBUG)",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_env_helpers_fail_loudly_and_read_file_secrets(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from django.core.exceptions import ImproperlyConfigured

    from marketplace.env import envbool, envfloat, envint, envlist, envstr

    monkeypatch.setenv("X_INT", "12")
    assert envint("X_INT", 1) == 12
    monkeypatch.setenv("X_INT", "twelve")
    with pytest.raises(ImproperlyConfigured, match="X_INT='twelve' is not an integer"):
        envint("X_INT", 1)
    monkeypatch.setenv("X_INT", "0")
    with pytest.raises(ImproperlyConfigured, match="at least 1"):
        envint("X_INT", 5, minimum=1)
    monkeypatch.setenv("X_FLOAT", "0.25")
    assert envfloat("X_FLOAT", 1.0) == 0.25
    assert envbool("X_UNSET_BOOL", True) is True
    monkeypatch.setenv("X_LIST", " a, b ,,c ")
    assert envlist("X_LIST") == ["a", "b", "c"]
    secret = tmp_path / "secret"
    secret.write_text("from-a-file\n")
    monkeypatch.setenv("X_SECRET_FILE", str(secret))
    assert envstr("X_SECRET") == "from-a-file"
    monkeypatch.setenv("X_SECRET_FILE", str(tmp_path / "missing"))
    with pytest.raises(ImproperlyConfigured, match="cannot be read"):
        envstr("X_SECRET")


def test_envdecimal_is_exact_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from decimal import Decimal

    from django.core.exceptions import ImproperlyConfigured

    from marketplace.env import envdecimal

    assert envdecimal("X_UNSET_DECIMAL", "20") == Decimal("20")
    monkeypatch.setenv("X_DEC", "12.5")
    assert envdecimal("X_DEC", "0", minimum="0", maximum="100", places=2) == Decimal("12.5")
    for raw, message in [
        ("abc", "is not a decimal number"),
        ("NaN", "is not a decimal number"),
        ("-1", "at least 0"),
        ("100.01", "at most 100"),
        ("1.005", "more than 2 decimal places"),
    ]:
        monkeypatch.setenv("X_DEC", raw)
        with pytest.raises(ImproperlyConfigured, match=message):
            envdecimal("X_DEC", "0", minimum="0", maximum="100", places=2)
