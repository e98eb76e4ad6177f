"""Local runtime: the Cog HTTP server (``cog`` + ``coglet`` from PyPI) as a subprocess.

For development, the embedded setup and CPU demo models: the model directory runs with the
agent's own Python environment, so its imports must be installed there. Each server gets its own
port and process group; stopping kills the whole group, and a restarted agent finds leftovers by
the marker in their environment.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

from django.conf import settings

from marketplace.catalog.cogschema import (
    CogProjectError,
    predictor_ref,
    read_cog_config,
    trainer_ref,
)
from workers.runtimes.base import (
    HOST_MARKER,
    INSTANCE_MARKER,
    InstanceSpec,
    RunningInstance,
    Runtime,
    RuntimeFailure,
    free_port,
)

# Environment variables a model process may inherit; everything else (the platform's database
# URL, SECRET_KEY, cloud credentials) stays out of model code.
_INHERITED_ENV = ("HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR")


def _pdeathsig_prefix() -> list[str]:
    # setpriv (util-linux) makes the kernel kill the server if the agent thread that started it
    # dies, so a SIGKILLed agent does not leave Cog servers running.
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []


class LocalInstance(RunningInstance):
    def __init__(self, process: subprocess.Popen[bytes], url: str, log_path: Path):
        self.process = process
        self.url = url
        self.ref = str(process.pid)
        self.log_path = log_path

    def exit_code(self) -> int | None:
        return self.process.poll()

    def logs(self, tail: int = 200) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as fh:
                return "".join(deque(fh, maxlen=tail))
        except OSError:
            return ""

    def stop(self, grace: float = 5.0) -> None:
        if self.process.poll() is None:
            _signal_group(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=grace)
        # Also catches children (coglet's worker) that outlive the server itself.
        _signal_group(self.process.pid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.wait(timeout=5)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _stale(schema_file: Path, spec: InstanceSpec) -> bool:
    """Whether to (re)write the directory's schema from the version's: coglet validates inputs
    only with that file, and a train-mode server needs its ``TrainingInput`` (a file written
    before the model had a trainer lacks it)."""
    if not schema_file.exists():
        return True
    if not spec.training:
        return False
    try:
        document = json.loads(schema_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return True
    return "TrainingInput" not in ((document.get("components") or {}).get("schemas") or {})


class LocalRuntime(Runtime):
    name = "local"

    def __init__(self, log_dir: Path | None = None):
        self.log_dir = log_dir or Path(settings.VAR_DIR) / "instances"

    def start(self, spec: InstanceSpec) -> LocalInstance:
        source = Path(spec.source_path)
        if not spec.source_path or not source.is_dir():
            raise RuntimeFailure(
                f"The model directory {spec.source_path!r} does not exist",
                permanent=True,
                models_fault=True,
            )
        try:
            config = read_cog_config(source)
            module_file, name = predictor_ref(config)
            trainer = trainer_ref(config)
        except CogProjectError as exc:
            raise RuntimeFailure(str(exc), permanent=True, models_fault=True) from exc
        if spec.training and trainer is None:
            raise RuntimeFailure(
                "This model has no trainer (no train: in its cog.yaml)",
                permanent=True,
                models_fault=True,
            )
        schema_file = source / ".cog" / "openapi_schema.json"
        if spec.schema is not None and _stale(schema_file, spec):
            # coglet validates inputs only with this file; the version's schema is the truth.
            schema_file.parent.mkdir(exist_ok=True)
            schema_file.write_text(json.dumps(spec.schema, indent=2))

        port = free_port()
        bin_dir = str(Path(sys.executable).parent)
        env = {k: os.environ[k] for k in _INHERITED_ENV if k in os.environ}
        env.update(
            {
                # coglet starts its worker by running `python` from PATH.
                "PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin",
                "PORT": str(port),
                "PYTHONUNBUFFERED": "1",
                "COG_PREDICT_TYPE_STUB": f"{module_file}:{name}",
                INSTANCE_MARKER: str(spec.instance_id),
                HOST_MARKER: spec.host_name,
            }
        )
        if trainer is not None:
            env["COG_TRAIN_TYPE_STUB"] = ":".join(trainer)
        if spec.weights_path:
            env["COG_WEIGHTS"] = spec.weights_path
        env.update(spec.env)
        cmd = [*_pdeathsig_prefix(), sys.executable, "-m", "cog.server.http", "--host", "127.0.0.1"]
        if spec.training:
            cmd += ["--x-mode", "train"]
        if spec.upload_url:
            cmd += ["--upload-url", spec.upload_url]
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{spec.instance_id}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                cmd,
                cwd=source,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return LocalInstance(process, f"http://127.0.0.1:{port}", log_path)

    def cleanup_leftovers(self, host_name: str) -> list[str]:
        removed = []
        me = os.getpid()
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit() or int(proc.name) == me:
                continue
            try:
                environ = (proc / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if f"{HOST_MARKER}={host_name}".encode() in environ and any(
                e.startswith(f"{INSTANCE_MARKER}=".encode()) for e in environ
            ):
                pid = int(proc.name)
                try:
                    os.killpg(os.getpgid(pid), signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    continue
                removed.append(str(pid))
        if removed:
            time.sleep(0.1)
        return removed
