#!/usr/bin/env python
"""Cold start of a pushed Cog image: pull, container start, model setup, first prediction.

Starts its own stack (uvicorn web, `manage.py registry`, and later a `manage.py agent` with the
Docker runtime) on the settings in the environment (DATABASE_URL / REDIS_URL if set, otherwise
SQLite and the embedded Redis under var/bench-coldstart/), builds the test image of
examples/hello (deploy/cogimage.py), pushes it with `docker push` as user `bench`, and then times
N cold starts two ways, removing every local copy of the image (and its base) before each:

  direct    the Docker runtime driven by hand: pull by digest with the agent's credential,
            create+start the container, poll /health-check until READY, POST /predictions
  platform  POST /v1/predictions with `Prefer: wait` to a stack whose agent has nothing running:
            queue → agent → pull → container → READY → dispatch → webhook → response

and prints each phase (median of N) and the platform's own added time (platform - direct).
Needs dockerd and docker-registry. Usage:

    .venv/bin/python bench/coldstart.py [-n 3]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketplace.settings")
os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("VAR_DIR", str(ROOT / "var" / "bench-coldstart"))
os.environ.setdefault("LOG_LEVEL", "INFO")

from workers.runtimes.base import free_port  # noqa: E402  (after sys.path is set)


def wait_until(condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {what}")


def remove_local_images(client: Any, references: list[str]) -> None:
    """Forget images (children before parents) so the next pull is a real cold pull."""
    import docker.errors

    for reference in references:
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.remove(reference, force=True)


def test_images(client: Any) -> list[str]:
    """Every locally built test image, the base last (the others are built on it)."""
    images = client.images.list(filters={"reference": "marketplace-test/*"})
    return sorted((i.id for i in images), key=lambda i: any(
        t.startswith("marketplace-test/cog-base:") for t in client.images.get(i).tags))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=3, help="cold starts per side (default 3)")
    args = parser.parse_args()

    import django

    django.setup()
    import docker
    from django.conf import settings
    from django.core.management import call_command

    from deploy.cogimage import build_model_image
    from marketplace.accounts.models import ApiToken, User
    from marketplace.catalog.models import Model
    from marketplace.deployments.models import Instance
    from marketplace.predictions.models import Prediction
    from marketplace.redisconn import ensure_embedded_redis
    from marketplace.registry.keys import signing_key
    from marketplace.registry.models import ImagePush
    from workers.cog import CogClient
    from workers.runtimes.base import InstanceSpec
    from workers.runtimes.docker import DockerRuntime

    var = Path(settings.VAR_DIR)
    var.mkdir(parents=True, exist_ok=True)
    call_command("migrate", verbosity=0)
    ensure_embedded_redis()
    signing_key()
    client = docker.from_env(timeout=600)
    user, _ = User.objects.get_or_create(username="bench")
    # Each run has a fresh registry on a new port: forget what an earlier run published.
    Model.objects.filter(owner__username="bench", name="hello").delete()
    ImagePush.objects.filter(repository="bench/hello").delete()
    _, token = ApiToken.create_for(user, name="coldstart")

    web_port, registry_host = free_port(), f"127.0.0.1:{free_port()}"
    base = f"http://127.0.0.1:{web_port}"
    env = {
        **os.environ,
        "REDIS_URL": settings.REDIS_URL,
        "PUBLIC_URL": base,
        "REGISTRY_HOST": registry_host,
        "REGISTRY_URL": f"http://{registry_host}",
        "INSTANCE_IDLE_TIMEOUT": "1",
    }
    settings.REGISTRY_HOST, settings.REGISTRY_URL = registry_host, f"http://{registry_host}"
    log = open(var / "coldstart.log", "ab")  # noqa: SIM115
    processes: list[subprocess.Popen[bytes]] = []

    def spawn(*argv: str) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=log)
        processes.append(process)
        return process

    storage = var / "registry-storage"
    shutil.rmtree(storage, ignore_errors=True)
    docker_config = Path(tempfile.mkdtemp(prefix="coldstart-docker-"))
    spawn(sys.executable, "-m", "uvicorn", "marketplace.asgi:application", "--port",
          str(web_port), "--no-access-log", "--lifespan", "off",
          "--log-level", "warning")  # fmt: skip
    spawn(sys.executable, "manage.py", "registry", "--listen", registry_host, "--storage",
          str(storage))  # fmt: skip
    try:

        def up() -> bool:
            try:
                httpx.get(base + "/", timeout=2)
                return httpx.get(f"http://{registry_host}/v2/", timeout=2).status_code == 401
            except httpx.TransportError:
                return False

        wait_until(up, 30, "web server and registry")

        def cli(*argv: str, stdin: str | None = None) -> None:
            docker_env = {**os.environ, "DOCKER_CONFIG": str(docker_config)}
            subprocess.run(["docker", *argv], input=stdin, text=True, check=True,
                           capture_output=True, env=docker_env)  # fmt: skip

        local = "marketplace-test/hello:latest"
        build_model_image(client, ROOT / "examples" / "hello", local)
        remote = f"{registry_host}/bench/hello:latest"
        cli("login", registry_host, "-u", "bench", "--password-stdin", stdin=token)
        cli("tag", local, remote)
        started = time.perf_counter()
        cli("push", remote)
        push_seconds = time.perf_counter() - started
        push = wait_until(
            lambda: ImagePush.objects.filter(repository="bench/hello").first(), 30, "the version"
        )
        version = push.version
        assert version is not None, push.reason
        image_ids = [remote, *test_images(client)]

        # --- direct: the runtime by hand ------------------------------------------------------
        runtime = DockerRuntime(client)
        direct: dict[str, list[float]] = {
            k: [] for k in ("pull", "container start", "boot+setup (READY)", "first prediction")
        }
        direct_total: list[float] = []
        for round_ in range(args.n):
            remove_local_images(client, image_ids)
            t0 = time.perf_counter()
            runtime.pull(version.image, "coldstart")
            t1 = time.perf_counter()
            running = runtime.start(
                InstanceSpec(instance_id=900 + round_, host_name="coldstart-direct",
                             version_id=version.pk, image=version.image)
            )  # fmt: skip
            t2 = time.perf_counter()
            runtime.wait_ready(running, 120)
            t3 = time.perf_counter()
            cog = CogClient(running.url)
            response = httpx.post(
                f"{running.url}/predictions", json={"input": {"text": "cold"}}, timeout=60
            )
            t4 = time.perf_counter()
            assert response.json()["output"] == "hello cold", response.text
            cog.close()
            running.stop()
            for key, value in zip(direct, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                direct[key].append(value)
            direct_total.append(t4 - t0)
            image_ids = [version.image]

        # --- platform: API → agent → container --------------------------------------------------
        agent = spawn(sys.executable, "manage.py", "agent", "--runtime", "docker", "--host-name",
                      "coldstart", "--idle-timeout", "1")  # fmt: skip
        api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=180)
        platform_total: list[float] = []
        phases: dict[str, list[float]] = {
            k: [] for k in ("queue→agent", "pull+start+setup", "ready→dispatch", "prediction",
                            "finish→response")
        }  # fmt: skip
        agent_log = var / "coldstart.log"
        for _round in range(args.n):
            wait_until(
                lambda: (
                    not Instance.objects.filter(
                        host__name="coldstart", state__in=Instance.LIVE
                    ).exists()
                ),
                30,
                "the previous instance to stop",
            )
            remove_local_images(client, [version.image])
            t0 = time.perf_counter()
            response = api.post(
                "/v1/predictions",
                json={"version": version.pk, "input": {"text": "cold"}},
                headers={"Prefer": "wait=60"},
            )
            wall = time.perf_counter() - t0
            body = response.json()
            assert body["status"] == "succeeded" and body["output"] == "hello cold", body
            prediction = Prediction.objects.get(pk=body["id"])
            instance = Instance.objects.get(pk=prediction.instance_id)
            assert instance.ready_at and prediction.started_at and prediction.completed_at
            platform_total.append(wall)
            seconds = [
                (instance.created_at - prediction.created_at).total_seconds(),
                (instance.ready_at - instance.created_at).total_seconds(),
                (prediction.started_at - instance.ready_at).total_seconds(),
                (prediction.completed_at - prediction.started_at).total_seconds(),
                wall - (prediction.completed_at - prediction.created_at).total_seconds(),
            ]
            for key, value in zip(phases, seconds, strict=True):
                phases[key].append(value)
        agent.send_signal(signal.SIGTERM)
        timings = re.findall(
            r"instance \d+: container \w+ at \S+ \(pull ([\d.]+) s, create\+start ([\d.]+) s\)",
            agent_log.read_text(errors="replace"),
        )[-args.n :]

        med = statistics.median
        print(f"coldstart: examples/hello pushed as {version.image}")
        print(f"  docker push (first, 1 model layer + base): {push_seconds:.2f} s")
        print(f"direct (runtime by hand), median of {args.n} cold starts:")
        for key, values in direct.items():
            print(f"  {key:28}{med(values):8.2f} s")
        print(f"  {'total':28}{med(direct_total):8.2f} s")
        print(f"platform (POST /v1/predictions, Prefer: wait), median of {args.n}:")
        for key, values in phases.items():
            print(f"  {key:28}{med(values):8.2f} s")
        if timings:
            pulls = [float(p) for p, _ in timings]
            starts = [float(s) for _, s in timings]
            print(f"    of which pull (agent log) {med(pulls):.2f} s, "
                  f"create+start {med(starts):.2f} s")  # fmt: skip
        print(f"  {'total (client wall time)':28}{med(platform_total):8.2f} s")
        print(f"platform's own added time (platform - direct): "
              f"{med(platform_total) - med(direct_total):.2f} s")  # fmt: skip
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(docker_config, ignore_errors=True)


if __name__ == "__main__":
    main()
