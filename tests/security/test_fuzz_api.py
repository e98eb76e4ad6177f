"""Schemathesis against our own OpenAPI document on a live server: no 5xx, and the answers
conform to the document (status codes, content types, response schemas). Hooks
(``fuzz_hooks.py``) mix bad input into the generated cases: lone surrogates, NUL, deep nesting,
thousands of unknown keys, lifetimes and ``Cancel-After`` past their bound.

Bounded (``SCHEMATHESIS_MAX_EXAMPLES`` per operation, 15 by default) so that it takes well under
two minutes; raise it locally for a deeper run. The seed is fixed so a failure reproduces.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BASE_DIR
from tests.factories import publish, token_for

ARTIFACTS = BASE_DIR / "var" / "test" / "artifacts"

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
    ]
)


def test_openapi_fuzzing_finds_no_server_errors(user: Any, start_web: Any, tmp_path: Path) -> None:
    publish(user, "hello")  # something to run, so creates get past "no such version"
    web = start_web(API_RATE_LIMIT="1000000", API_RATE_LIMIT_CREATE="1000000")
    examples = os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "15")
    argv = [
        str(Path(sys.executable).parent / "schemathesis"),
        "run",
        f"{web.url}/v1/openapi.json?format=json",
        "--url",
        web.url,
        "--header",
        f"Authorization: Bearer {token_for(user)}",
        "--checks",
        CHECKS,
        "--max-examples",
        examples,
        "--phases",
        "examples,coverage,fuzzing",
        "--seed",
        "20261122",
        "--generation-database",
        "none",
        # One worker: with two threads, hypothesis's lambda-source parsing (ast.parse) hit a
        # CPython thread-safety error inside schemathesis (a tool error, not an API one).
        "--workers",
        "1",
        "--request-timeout",
        "20",
        "--no-color",
        "--output-truncate",
        "false",
    ]
    # The hooks add issue 15's bad input (surrogates, NUL, depth, unknown keys, lifetimes) to the
    # generated cases; each mutated request is logged so that we know they were sent.
    log = tmp_path / "mutations.log"
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.security.fuzz_hooks",
        "FUZZ_HOOKS_LOG": str(log),
        "PYTHONPATH": str(BASE_DIR),
    }
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=600, cwd=tmp_path, check=False, env=env
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-20000:] + "\n--- server log ---\n" + web.log()[-5000:]
    sent = [line.split() for line in log.read_text().splitlines()] if log.exists() else []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "fuzz-mutations.log").write_text(log.read_text() if log.exists() else "")
    kinds = {kind for kind, *_ in sent}
    assert {"surrogate", "nul", "deep", "many-keys", "lifetime", "header"} <= kinds, kinds
    assert all(int(status) < 500 for *_, status in sent)
    refused = [status for kind, method, _, status in sent if method == "POST" and kind != "header"]
    assert any(status in ("400", "413", "422") for status in refused)
