"""The layers read top-down: the domain (``marketplace/``) never imports the processes on top of
it (``workers/``), and nothing reads RQ's internal Redis keys by name (RQ's public API —
queues, jobs, registries — is the only way in)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RQ_KEY_PREFIX = "rq" + ":"


def python_files(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def imported_modules(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module)
    return names


def test_the_domain_never_imports_the_workers_layer() -> None:
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in python_files("marketplace")
        for name in imported_modules(path)
        if name == "workers" or name.startswith("workers.")
    ]
    assert offenders == []


def test_no_module_names_an_rq_key() -> None:
    offenders = []
    for path in python_files("marketplace", "workers", "tests", "bench", "deploy"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if node.value.startswith(RQ_KEY_PREFIX):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
            elif isinstance(node, ast.JoinedStr) and node.values:
                first = node.values[0]
                if isinstance(first, ast.Constant) and str(first.value).startswith(RQ_KEY_PREFIX):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: f-string")
    assert offenders == []


def test_the_layering_checks_would_notice_an_offender() -> None:
    # The checks above look where the code is: make sure they see what they look for.
    sample = ROOT / "workers" / "agent.py"
    assert "marketplace.scheduling" in imported_modules(sample)
