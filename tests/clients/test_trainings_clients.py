"""Trainings through the official clients (Python 1.0.7, JS 1.4.0) against a live stack: uvicorn,
a host agent running real Cog servers in train and predict mode, and an RQ worker for webhooks.

The trainable fixture (tests/fixtures/cog/trainable) trains a weights file holding a phrase; its
predictor says that phrase once ``setup(weights=…)`` read it, "untrained" without."""

from __future__ import annotations

import json
import os
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import replicate
from replicate.exceptions import ReplicateError
from replicate.webhook import Webhooks, WebhookSigningSecret

from marketplace.billing import pricing
from marketplace.billing.models import UsageEntry
from marketplace.catalog.models import Model, Version
from marketplace.files.models import StoredFile
from marketplace.predictions.models import Prediction
from tests.clients.test_official_clients import Receiver
from tests.conftest import wait_for
from tests.factories import publish, token_for

pytestmark = pytest.mark.django_db(transaction=True)

TRAINABLE = Path(__file__).resolve().parents[1] / "fixtures" / "cog" / "trainable"


def finished(client: replicate.Client, training_id: str, timeout: float = 90) -> Any:
    box: dict[str, Any] = {}

    def done() -> bool:
        box["t"] = client.trainings.get(training_id)
        return box["t"].status in ("succeeded", "failed", "canceled")

    wait_for(done, timeout=timeout, message=f"training {training_id} to end")
    return box["t"]


def test_trainings_through_the_official_clients(
    start_web: Any, start_agent: Any, start_worker: Any, user: Any, js_client: Path
) -> None:
    base = publish(user, TRAINABLE, name="trainable")
    web = start_web()
    agent = start_agent(max_instances=4, PUBLIC_URL=web.url)
    start_worker("--with-scheduler", "default", "webhooks")
    token = token_for(user)
    client = replicate.Client(api_token=token, base_url=web.url)

    # The base model is untrained.
    assert client.run(f"alice/trainable:{base.id}", input={"name": "py"}) == "untrained, py"

    # trainings.create to a destination that does not exist yet: created private.
    training = client.trainings.create(
        model="alice/trainable",
        version=base.id,
        # 0.1 s, so its cost at $0.0001/s is not rounded to zero as a 4 ms training's is.
        input={"phrase": "ahoy", "seconds": 0.1},
        destination="alice/trained-py",
    )
    assert training.status == "starting" and training.model == "alice/trainable"
    assert training.version == base.id
    assert training.urls["get"] == f"{web.url}/v1/trainings/{training.id}"
    assert Model.objects.get(owner__username="alice", name="trained-py").visibility == "private"

    training = finished(client, training.id)
    assert training.status == "succeeded", (training.error, training.logs, agent.log()[-3000:])
    assert "training on 'ahoy'" in training.logs
    assert training.destination == "alice/trained-py"
    version_ref = training.output["version"]
    assert version_ref.startswith("alice/trained-py:")
    weights = httpx.get(training.output["weights"])
    assert weights.status_code == 200 and weights.text == "ahoy"

    # The new version runs the base's code with the trained weights.
    assert client.run(version_ref, input={"name": "py"}) == "ahoy, py"
    assert client.run(f"alice/trainable:{base.id}", input={"name": "py"}) == "untrained, py"
    trained = Version.objects.get(pk=version_ref.split(":")[1])
    assert trained.trained_from_id == base.id and trained.training_id == training.id
    assert trained.openapi_schema == base.openapi_schema
    assert StoredFile.objects.get(name=trained.weights).kind == StoredFile.Kind.WEIGHTS

    # get and list (cursor pages) see it; /v1/predictions does not list trainings.
    assert client.trainings.get(training.id).output["version"] == version_ref
    assert [t.id for t in client.trainings.list().results] == [training.id]
    assert training.id not in [p.id for p in client.predictions.list().results]

    # Billed as a training: time x the hardware's price, the cost on the training.
    entry = UsageEntry.objects.get(prediction_id=training.id)
    row = Prediction.objects.get(pk=training.id)
    assert entry.kind == "training"
    assert entry.seconds == Decimal(str(row.metrics["predict_time"])).quantize(Decimal("0.001"))
    assert entry.price_per_second == base.model.default_hardware.price_per_second
    assert entry.amount == pricing.money(entry.price_per_second * entry.seconds)  # half up
    raw = httpx.get(
        f"{web.url}/v1/trainings/{training.id}", headers={"Authorization": f"Bearer {token}"}
    ).json()
    assert Decimal(raw["cost"]) == row.cost == entry.amount > 0

    # Webhooks: signed, filtered (completed only), with the training's output.
    receiver = Receiver()
    hooked = client.trainings.create(
        model="alice/trainable",
        version=base.id,
        input={"phrase": "hooked"},
        destination="alice/trained-py",
        webhook=receiver.url,
        webhook_events_filter=["completed"],
    )
    wait_for(lambda: receiver.requests, timeout=60, message="the training's completed webhook")
    secret = WebhookSigningSecret(key=client.webhooks.default.secret().key)
    [(headers, body)] = receiver.requests
    Webhooks.validate(headers=headers, body=body, secret=secret)  # raises if invalid
    delivered = json.loads(body)
    assert delivered["id"] == hooked.id and delivered["status"] == "succeeded"
    assert delivered["output"]["version"].startswith("alice/trained-py:")

    # Cancel of a running training.
    slow = client.trainings.create(
        "alice/trainable:" + base.id,
        input={"phrase": "slow", "seconds": 60},
        destination="alice/trained-py",
    )
    wait_for(
        lambda: client.trainings.get(slow.id).status == "processing",
        timeout=60,
        message="the slow training to start",
    )
    # A running training holds its own instance: the version's predictions still run.
    assert client.run(f"alice/trainable:{base.id}", input={"name": "meanwhile"}) == (
        "untrained, meanwhile"
    )
    assert client.trainings.get(slow.id).status == "processing"
    slow.cancel()
    slow = finished(client, slow.id, timeout=30)
    assert slow.status == "canceled" and slow.output is None
    assert not Version.objects.filter(training_id=slow.id).exists()

    # A destination that is someone else's, or a malformed one: refused, nothing created.
    with pytest.raises(ReplicateError) as refused:
        client.trainings.create(
            model="alice/trainable", version=base.id, input={"phrase": "x"}, destination="x"
        )
    assert refused.value.status == 422
    with pytest.raises(ReplicateError) as refused:
        client.trainings.create(
            model="alice/trainable", version=base.id, input={}, destination="alice/other"
        )
    assert refused.value.status == 422  # phrase is required

    # The JS client, on the same stack.
    config = {"baseUrl": web.url, "token": token, "version": base.id}
    result = subprocess.run(
        ["node", "trainings_check.mjs"],
        cwd=js_client,
        env={"MK_CONFIG": json.dumps(config), "PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=180,
    )
    js = json.loads(result.stdout or "{}")
    assert result.returncode == 0 and "error" not in js, (js.get("error"), result.stderr)
    assert js["created"]["status"] == "starting"
    assert js["finished"]["status"] == "succeeded", js
    assert js["finished"]["output"]["version"].startswith("alice/trained-js:")
    assert js["ran"] == "hola, js" and js["base"] == "untrained, js"
    assert js["got"] == js["finished"]["id"] and js["listed"] == 4
    assert js["canceled"] == "canceled"
