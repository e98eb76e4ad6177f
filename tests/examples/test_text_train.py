"""The text-train demo through real Cog servers (cog + coglet 0.23.1): Cog's train mode learns an
uploaded text file, and the predict mode, given those weights through COG_WEIGHTS, writes in that
text's voice - which the base model, given no weights, does not."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import wait_for
from tests.factories import EXAMPLES
from workers.runtimes.base import InstanceSpec, free_port
from workers.runtimes.local import LocalRuntime

pytestmark = pytest.mark.slow

DEMO = EXAMPLES / "text-train"
SAMPLE = DEMO / "samples" / "astronomer.txt"


def vocabulary(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


@contextlib.contextmanager
def train_server(log: Path) -> Iterator[str]:
    """`python -m cog.server.http --x-mode train` with the stub cog.yaml's `train:` names."""
    port = free_port()
    stub = yaml.safe_load((DEMO / "cog.yaml").read_text())["train"]
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",  # coglet runs `python` from PATH
        "PORT": str(port),
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "COG_TRAIN_TYPE_STUB": stub,
    }
    with open(log, "wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "cog.server.http", "--host", "127.0.0.1", "--x-mode", "train"],
            cwd=DEMO,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            assert process.poll() is None, log.read_text()
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(f"{url}/health-check", timeout=2).json()["status"] == "READY"
            return False

        wait_for(ready, timeout=60, message="the train-mode Cog server")
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def test_training_makes_the_model_write_in_the_uploaded_texts_voice(tmp_path: Path) -> None:
    runtime = LocalRuntime(log_dir=tmp_path)
    host = f"tt-{uuid.uuid4().hex[:6]}"
    base_spec = InstanceSpec(instance_id=1, host_name=host, version_id="0" * 64,
                             source_path=str(DEMO))  # fmt: skip
    with train_server(tmp_path / "train.log") as train_url, runtime.instance(base_spec) as base:
        root = httpx.get(f"{train_url}/", timeout=5).json()
        assert root["trainings_url"] == "/trainings"
        # The schema is TrainingInput's: coglet refuses what it forbids before train() runs.
        refused = httpx.post(
            f"{train_url}/trainings", json={"input": {"text_file": "data:,x", "order": 9}},
            timeout=10,
        )  # fmt: skip
        assert refused.status_code == 422
        assert refused.json()["detail"][0]["loc"] == ["body", "input", "order"]

        sample = SAMPLE.read_bytes()
        upload = "data:text/plain;base64," + base64.b64encode(sample).decode()
        trained = httpx.post(
            f"{train_url}/trainings",
            json={"id": "train-1", "input": {"text_file": upload, "order": 2}},
            timeout=60,
        ).json()
        assert trained["status"] == "succeeded", trained
        assert "100%|" in trained["logs"] and "10/10" in trained["logs"]
        header, _, payload = trained["output"]["weights"].partition(",")
        assert header == "data:application/json;base64"
        weights_file = tmp_path / "weights.json"
        weights_file.write_bytes(base64.b64decode(payload))
        assert json.loads(weights_file.read_text())["format"] == "text-train/markov-v1"

        # The trained version: the same code, its weights through COG_WEIGHTS.
        trained_spec = InstanceSpec(instance_id=2, host_name=host, version_id="1" * 64,
                                    source_path=str(DEMO),
                                    env={"COG_WEIGHTS": str(weights_file)})  # fmt: skip
        with runtime.instance(trained_spec) as tuned:
            runtime.wait_ready(tuned, timeout=60)
            runtime.wait_ready(base, timeout=60)
            outputs = {}
            for name, instance in (("base", base), ("trained", tuned)):
                answer = httpx.post(
                    f"{instance.url}/predictions",
                    json={"input": {"length": 80, "seed": 7}},
                    timeout=30,
                ).json()
                assert answer["status"] == "succeeded", answer
                outputs[name] = answer["output"]
            assert "loaded trained weights" in tuned.logs()

    corpus = (DEMO / "corpus.txt").read_text()
    only_in_sample = vocabulary(sample.decode()) - vocabulary(corpus)
    assert {"telescope", "comet", "observatory", "nebula"} <= only_in_sample
    trained_words = vocabulary(outputs["trained"])
    base_words = vocabulary(outputs["base"])
    assert len(trained_words & only_in_sample) >= 3, outputs["trained"]
    assert not base_words & only_in_sample, outputs["base"]
    assert len(outputs["trained"].split()) == 80
