"""Catalog workflows that reach outside the database (model directories, schema generation)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import cog
from django.db import transaction

from marketplace import audit
from marketplace.accounts.models import Account
from marketplace.catalog.cogschema import CogProjectError, ensure_schema, read_cog_config
from marketplace.catalog.models import Hardware, Model, Version

_SKIPPED_DIRS = {".cog", "__pycache__", ".git", ".venv", "node_modules"}


def _source_digest(path: Path, schema: dict) -> str:
    """A version id from the directory's content: publishing unchanged code is idempotent."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        relative = file.relative_to(path)
        if any(part in _SKIPPED_DIRS or part.startswith(".") for part in relative.parts):
            continue
        digest.update(str(relative).encode() + b"\0" + file.read_bytes() + b"\0")
    digest.update(json.dumps(schema, sort_keys=True).encode())
    return digest.hexdigest()


def _readme_and_description(path: Path) -> tuple[str, str]:
    """The README, and its first paragraph (which may wrap over lines) as the description."""
    readme_file = path / "README.md"
    readme = readme_file.read_text(encoding="utf-8") if readme_file.exists() else ""
    paragraph: list[str] = []
    for line in readme.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            paragraph.append(line)
        elif paragraph:
            break
    description = " ".join(paragraph)
    if len(description) > 500:
        description = description[:499].rsplit(" ", 1)[0] + "…"
    return readme, description


def version_publish_local(
    *,
    path: Path,
    owner: Account,
    name: str,
    hardware: Hardware | None = None,
    visibility: str | None = None,
) -> tuple[Version, bool]:
    """Create the model if needed and a version from a Cog project directory.

    Returns (version, created); publishing an unchanged directory returns the existing version.
    Raises CogProjectError when the directory is not a loadable Cog project.
    """
    path = path.resolve()
    if not (path / "cog.yaml").is_file():
        raise CogProjectError(f"{path} has no cog.yaml")
    config = read_cog_config(path)
    schema = ensure_schema(path)
    readme, description = _readme_and_description(path)
    version_id = _source_digest(path, schema)
    with transaction.atomic():
        model, model_created = Model.objects.get_or_create(
            owner=owner,
            name=name,
            defaults={
                "default_hardware": hardware or Hardware.objects.get(sku="cpu"),
                "visibility": visibility or Model.Visibility.PUBLIC,
                "description": description,
                "readme": readme,
            },
        )
        if not model_created:
            changed: dict[str, Any] = {
                "readme": readme,
                "description": description or model.description,
            }
            if hardware is not None:
                changed["default_hardware"] = hardware
            if visibility is not None:
                changed["visibility"] = visibility
            for field, value in changed.items():
                setattr(model, field, value)
            model.save()
        existing = Version.objects.filter(pk=version_id).first()
        if existing is not None:
            if existing.model_id != model.pk:
                raise CogProjectError(f"This exact code is already published as {existing}")
            return existing, False
        version = Version.objects.create(
            id=version_id,
            model=model,
            openapi_schema=schema,
            cog_version=cog.__version__,
            cog_config=config,
            source_path=str(path),
        )
        audit.record(
            "version.create", account=owner, target=version, via="publish_local", path=str(path)
        )
    return version, True


def record_model_change(model: Model, changed: dict[str, Any], request: Any) -> None:
    """Audit an edit of a model: which fields changed (values only for visibility, the one that
    decides who sees it; descriptions and readmes can be long and are on the page anyway)."""
    if not changed:
        return
    audit.record(
        "model.update", account=model.owner, target=model, request=request, fields=sorted(changed)
    )
    if "visibility" in changed:
        audit.record(
            "model.visibility",
            account=model.owner,
            target=model,
            request=request,
            visibility=str(changed["visibility"]),
        )
