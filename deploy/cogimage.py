#!/usr/bin/env python
"""Build Cog-compatible Docker images offline-ish, without ``cog build``: for tests and benchmarks.

Two layers, both cached:

1. A **base image** ``marketplace-test/cog-base:<key>``: a Debian bookworm minbase rootfs
   (``debootstrap``, python3 + tini) with the ``cog``/``coglet`` wheels from PyPI installed with
   ``pip install --target``, imported with ``docker import``. The rootfs tarball is kept under
   ``var/cog-image/`` keyed by every input (suite, packages, Cog version, this recipe's version), so
   after the first run (about a minute, needs the Debian mirror and PyPI once) nothing is fetched
   again; the image itself is re-imported from the tarball in a few seconds when dockerd lost it.
2. A **model image** per model directory: ``FROM`` the base, the predictor files under ``/src``,
   the schema at ``/src/.cog/openapi_schema.json`` and the ``run.cog.*`` labels (or none, to build
   an image the registry hook must refuse). Built through the Docker API, so Docker's build cache
   makes a rebuild of unchanged inputs instant.

Usage::

    .venv/bin/python deploy/cogimage.py examples/hello marketplace-test/hello:latest [--no-labels]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
COG_VERSION = "0.23.1"
SUITE = "bookworm"
MIRROR = os.environ.get("DEBOOTSTRAP_MIRROR", "http://deb.debian.org/debian")
PACKAGES = ("python3", "tini", "ca-certificates")  # coglet's HTTP client needs CA roots
RECIPE = "2"  # bump when the recipe below changes in a way the inputs don't show
BASE_REPOSITORY = "marketplace-test/cog-base"

BASE_CHANGES = [
    "ENV PYTHONUNBUFFERED=1",
    "ENV NVIDIA_DRIVER_CAPABILITIES=all",
    "WORKDIR /src",
    "EXPOSE 5000",
    'ENTRYPOINT ["/usr/bin/tini", "--"]',
    'CMD ["python", "-m", "cog.server.http"]',
]


def cache_dir() -> Path:
    var = Path(os.environ.get("VAR_DIR") or ROOT / "var")
    path = var / "cog-image"
    path.mkdir(parents=True, exist_ok=True)
    return path


def base_key() -> str:
    ingredients = json.dumps([RECIPE, SUITE, PACKAGES, COG_VERSION, sys.version_info[:2]])
    return hashlib.sha256(ingredients.encode()).hexdigest()[:16]


def dockerfile_quote(value: str) -> str:
    """Quote a LABEL/ENV value: Dockerfile word processing would expand ``$ref`` otherwise."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'


def _run(cmd: list[str], **kwargs: Any) -> None:
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, **kwargs)


def build_rootfs_tarball(dest: Path) -> Path:
    """debootstrap + the Cog wheels, tarred. Needs root, the Debian mirror and PyPI (once)."""
    if shutil.which("debootstrap") is None:
        raise SystemExit("debootstrap is not installed (apt-get install debootstrap)")
    cache = cache_dir()
    wheels = cache / f"wheels-cog-{COG_VERSION}"
    if not any(wheels.glob("coglet-*.whl")):
        platforms = ["manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64"]
        platform_args = [a for p in [*platforms, "linux_x86_64"] for a in ("--platform", p)]
        _run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:",
             "--python-version", "3.11", "--implementation", "cp", *platform_args,
             "-d", str(wheels), f"cog=={COG_VERSION}", f"coglet=={COG_VERSION}"]
        )  # fmt: skip
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        rootfs = Path(tmp) / "rootfs"
        _run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE,
             str(rootfs), MIRROR],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        site = rootfs / "usr/local/lib/python3.11/dist-packages"
        _run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-index",
             "--find-links", str(wheels), "--only-binary=:all:", "--python-version", "3.11",
             "--implementation", "cp", "--platform", "manylinux2014_x86_64",
             "--platform", "manylinux_2_17_x86_64", "--target", str(site),
             f"cog=={COG_VERSION}"]
        )  # fmt: skip
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc",
                     "usr/share/man", "usr/share/locale", "usr/share/info"):  # fmt: skip
            target = rootfs / junk
            if target.is_dir():
                for child in target.iterdir():
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child)
                    else:
                        child.unlink()
        python = rootfs / "usr/bin/python"
        if not python.exists():
            python.symlink_to("python3")  # coglet spawns `python`
        (rootfs / "src").mkdir(exist_ok=True)
        partial = dest.with_suffix(".partial")
        _run(["tar", "-C", str(rootfs), "--numeric-owner", "-czf", str(partial), "."])
        partial.rename(dest)
    return dest


def ensure_base_image(client: Any) -> str:
    """The base image's tag, importing it (and building its rootfs) when missing."""
    import docker.errors

    key = base_key()
    tag = f"{BASE_REPOSITORY}:{key}"
    try:
        client.images.get(tag)
        return tag
    except docker.errors.ImageNotFound:
        pass
    tarball = cache_dir() / f"rootfs-{key}.tar.gz"
    if not tarball.exists():
        build_rootfs_tarball(tarball)
    client.api.import_image(
        src=str(tarball), repository=BASE_REPOSITORY, tag=key, changes=BASE_CHANGES
    )
    client.images.get(tag)  # raises if the import silently failed
    return tag


def cog_labels(model_dir: Path, schema: dict) -> dict[str, str]:
    import yaml

    config = yaml.safe_load((model_dir / "cog.yaml").read_text())
    return {
        "run.cog.version": COG_VERSION,
        "run.cog.config": json.dumps(config, separators=(",", ":")),
        "run.cog.openapi_schema": json.dumps(schema, separators=(",", ":")),
    }


def build_model_image(client: Any, model_dir: Path | str, tag: str, *, labels: bool = True) -> str:
    """Build ``tag`` from a Cog model directory on top of the base image; return the image id."""
    sys.path.insert(0, str(ROOT))
    from marketplace.catalog.cogschema import (
        ensure_schema,
        predictor_ref,
        read_cog_config,
        trainer_ref,
    )

    model_dir = Path(model_dir).resolve()
    schema = ensure_schema(model_dir)
    config = read_cog_config(model_dir)
    module_file, name = predictor_ref(config)
    base = ensure_base_image(client)
    lines = [
        f"FROM {base}",
        f"ENV COG_PREDICT_TYPE_STUB={dockerfile_quote(f'{module_file}:{name}')}",
    ]
    # As `cog build` does for a model with `train:`; `--x-mode train` reads it.
    if (trainer := trainer_ref(config)) is not None:
        lines.append(f"ENV COG_TRAIN_TYPE_STUB={dockerfile_quote(':'.join(trainer))}")
    lines.append("COPY src/ /src/")
    if labels:
        lines += [
            f"LABEL {k}={dockerfile_quote(v)}" for k, v in cog_labels(model_dir, schema).items()
        ]
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        dockerfile = ("\n".join(lines) + "\n").encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
        for path in sorted(model_dir.rglob("*")):
            rel = path.relative_to(model_dir)
            if "__pycache__" in rel.parts or not path.is_file():
                continue
            member = tar.gettarinfo(str(path), arcname=f"src/{rel}")
            member.mtime, member.uid, member.gid = 0, 0, 0  # keep the build cache stable
            member.uname = member.gname = ""
            with open(path, "rb") as fh:
                tar.addfile(member, fh)
    context.seek(0)
    image, _ = client.images.build(fileobj=context, custom_context=True, tag=tag, rm=True)
    return str(image.id)


def main(argv: list[str] | None = None) -> int:
    import docker

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("tag")
    parser.add_argument("--no-labels", action="store_true", help="omit the run.cog.* labels")
    args = parser.parse_args(argv)
    image_id = build_model_image(
        docker.from_env(timeout=600), args.model_dir, args.tag, labels=not args.no_labels
    )
    print(image_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
