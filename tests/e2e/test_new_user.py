"""A new user's path, as ``make run`` sets it up: ``manage.py runstack`` (web, one agent with the
default four instance slots and the default minimum residency, an RQ worker), the demo models
from ``seed_demo``, and the official Python client running each demo model in turn. Seven models
on four slots: the fifth to seventh run only because the host evicts idle ones for them."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import replicate
from django.core.management import call_command
from PIL import Image

from marketplace.catalog.management.commands.seed_demo import DEMO_MODELS
from marketplace.deployments.models import Instance
from tests.conftest import BASE_DIR, child_env, wait_for
from tests.factories import cpu
from workers.runtimes.base import free_port

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# What each demo model gets: the inputs a newcomer would try first.
INPUTS: dict[str, dict[str, Any]] = {
    "hello": {"text": "you"},
    "text-stream": {"prompt": "the", "max_tokens": 8, "seed": 1},
    "input-types": {"count": 2, "color": "red"},
    "slow-progress": {},
    "hello-concurrent": {"text": "again"},
    "text-train": {"length": 12, "seed": 1},
}
BUDGET_SECONDS = 30.0


def png() -> io.BytesIO:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), (20, 120, 200)).save(buffer, format="PNG")
    buffer.seek(0)
    return buffer


def test_a_new_user_runs_every_demo_model_in_turn(tmp_path: Path, settings: Any) -> None:
    cpu()  # the hardware a fresh database has (transactional tests flush the seeded rows)
    settings.DEBUG = True  # seed_demo is for development, as `make run` is
    out = io.StringIO()
    call_command("seed_demo", stdout=out, stderr=io.StringIO())
    token = out.getvalue().strip()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings.PUBLIC_URL = url
    host = f"newcomer-{uuid.uuid4().hex[:6]}"
    env = child_env(PUBLIC_URL=url, AGENT_HOST_NAME=host)
    for name in ("AGENT_MAX_INSTANCES", "INSTANCE_MIN_RESIDENCY", "INSTANCE_IDLE_TIMEOUT"):
        env.pop(name, None)  # make run's defaults
    log = tmp_path / "runstack.log"
    with open(log, "ab") as sink:
        stack = subprocess.Popen(
            [
                sys.executable,
                str(BASE_DIR / "manage.py"),
                "runstack",
                "--bind",
                f"127.0.0.1:{port}",
            ],
            env=env,
            cwd=BASE_DIR,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def up() -> bool:
            if stack.poll() is not None:
                pytest.fail(f"runstack exited:\n{log.read_text()}")
            try:
                return httpx.get(f"{url}/", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, timeout=60, message="runstack's web server")
        client = replicate.Client(api_token=token, base_url=url)
        took: dict[str, float] = {}
        for _, name in DEMO_MODELS:
            started = time.monotonic()
            input = {"image": png(), "filter": "invert"} if name == "image-filter" else INPUTS[name]
            output = client.run(f"demo/{name}", input=input)
            took[name] = round(time.monotonic() - started, 1)
            assert output, name
        print("seconds per demo model:", took)
        assert all(seconds <= BUDGET_SECONDS for seconds in took.values()), took
        assert Instance.objects.filter(stop_cause="evicted").count() >= 2, took
    finally:
        os.killpg(stack.pid, signal.SIGTERM)
        try:
            stack.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(stack.pid, signal.SIGKILL)
            stack.wait()
