from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

JS_DIR = Path(__file__).resolve().parent / "js"


@pytest.fixture(scope="session")
def js_client() -> Path:
    """The pinned JS client installed with ``npm ci`` (again only when the lockfile changed)."""
    if shutil.which("npm") is None or shutil.which("node") is None:
        pytest.fail("Node.js and npm are needed for the JS client tests (make test installs them)")
    lock = JS_DIR / "package-lock.json"
    stamp = JS_DIR / "node_modules" / ".lock-sha256"
    digest = hashlib.sha256(lock.read_bytes()).hexdigest()
    if not stamp.exists() or stamp.read_text() != digest:
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=JS_DIR,
            check=True,
            timeout=300,
        )
        stamp.write_text(digest)
    return JS_DIR
