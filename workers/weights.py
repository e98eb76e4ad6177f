"""Trained weights on the agent's disk: what ``COG_WEIGHTS`` points at for a trained version.

The weights live in the platform's storage (``Version.weights``, a stored name). Before a trained
version's server starts, the agent copies them to ``VAR_DIR/weights/<digest>/<file>`` once (a
later instance of the same version reuses the copy) and hands the model a local path: the model
needs no network access to the platform, and no signed URL can expire under a long-lived
instance. The Docker runtime mounts that directory read-only.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
from pathlib import Path

from django.conf import settings

from marketplace import storage
from workers.runtimes.base import RuntimeFailure

_lock = threading.Lock()


def local_copy(name: str) -> Path:
    """The local path of the stored file ``name``, copied from storage on first use."""
    digest = hashlib.sha256(name.encode()).hexdigest()[:32]
    directory = Path(settings.VAR_DIR) / "weights" / digest
    path = directory / (Path(name).name or "weights")
    with _lock:
        if path.is_file():
            return path
        directory.mkdir(parents=True, exist_ok=True)
        partial = directory / f".{path.name}.{os.getpid()}.part"
        try:
            source = storage.open_stream(name)
            try:
                with open(partial, "wb") as target:
                    shutil.copyfileobj(source, target, 1024 * 1024)
            finally:
                source.close()
        except FileNotFoundError as exc:
            partial.unlink(missing_ok=True)
            raise RuntimeFailure(
                f"The weights of this version ({name}) are no longer in storage",
                permanent=True,
                models_fault=True,
            ) from exc
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise RuntimeFailure(f"Could not fetch the weights: {exc}", permanent=False) from exc
        os.replace(partial, path)
        # Containers run as whatever user their image says: let any of them read it.
        path.chmod(0o644)
        directory.chmod(0o755)
        return path
