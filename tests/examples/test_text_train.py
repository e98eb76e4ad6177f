"""The text-train demo through real Cog servers (cog + coglet 0.23.1): Cog's train mode learns an
uploaded text file, and the predict mode, given those weights through COG_WEIGHTS, writes in that
text's voice - which the base model, given no weights, does not."""

from __future__ import annotations

import base64
import json
import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.factories import EXAMPLES
from workers.runtimes.base import InstanceSpec
from workers.runtimes.local import LocalRuntime

pytestmark = pytest.mark.slow

DEMO = EXAMPLES / "text-train"
SAMPLE = DEMO / "samples" / "astronomer.txt"


def vocabulary(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def test_training_makes_the_model_write_in_the_uploaded_texts_voice(tmp_path: Path) -> None:
    runtime = LocalRuntime(log_dir=tmp_path)
    host = f"tt-{uuid.uuid4().hex[:6]}"

    def spec(instance_id: int, **extra: Any) -> InstanceSpec:
        return InstanceSpec(instance_id=instance_id, host_name=host, version_id="0" * 64,
                            source_path=str(DEMO), **extra)  # fmt: skip

    # The runtime starts `python -m cog.server.http --x-mode train` with COG_TRAIN_TYPE_STUB
    # from cog.yaml's `train:`; the base version's server at the same time.
    with runtime.instance(spec(1, mode="train")) as trainer, runtime.instance(spec(2)) as base:
        runtime.wait_ready(trainer, timeout=60)
        train_url = trainer.url
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
        trained = httpx.put(
            f"{train_url}/trainings/train-1",
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
        with runtime.instance(spec(3, weights_path=str(weights_file))) as tuned:
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
