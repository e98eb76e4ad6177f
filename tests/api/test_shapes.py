"""Frozen JSON shapes of every API object (tests/api/fixtures/*.json).

Volatile values (ids, timestamps, durations, secrets, checksums of random content) are replaced
by placeholders; everything else, including which keys exist and their types, must match the
fixture exactly. Regenerate deliberately with ``UPDATE_API_FIXTURES=1`` and review the diff.
"""

from __future__ import annotations

import json
import os
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from marketplace.catalog import runs
from marketplace.catalog.models import Collection, Hardware
from marketplace.predictions import webhooks
from marketplace.predictions.services import Outcome, prediction_claim, prediction_finish
from tests.factories import publish

pytestmark = pytest.mark.django_db(transaction=True)

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TIME_KEYS = {"created_at", "started_at", "completed_at", "expires_at", "deadline", "attempted_at"}
TIME_KEYS |= {"delivered_at", "next_attempt_at"}
NUMBER_KEYS = {"predict_time", "total_time", "queue_time", "setup_time", "duration_ms"}
PATTERNS = [
    (re.compile(r"[0-9a-f]{64}"), "<version-id>"),
    (re.compile(r"(?<![0-9a-z])[a-z2-7]{26}(?![0-9a-z])"), "<id>"),
    (re.compile(r"/v1/streams/[A-Za-z0-9_-]+"), "/v1/streams/<token>"),
    (re.compile(r"msg_[A-Za-z0-9_-]+"), "msg_<id>"),
    (re.compile(r"whsec_[A-Za-z0-9+/=]+"), "whsec_<secret>"),
    (re.compile(r"cursor=[A-Za-z0-9%_-]+"), "cursor=<cursor>"),
]


def normalize(value: Any, key: str = "") -> Any:
    if key == "openapi_schema" and isinstance(value, dict) and value.get("openapi"):
        # Cog's own document: only its presence and the Output schema matter to the clients.
        return {"components": {"schemas": {"Output": value["components"]["schemas"]["Output"]}}}
    if isinstance(value, dict):
        return {k: normalize(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [normalize(v, key) for v in value]
    if key in TIME_KEYS and isinstance(value, str):
        return "<time>"
    if key in NUMBER_KEYS and isinstance(value, int | float):
        return "<number>"
    if key == "cost" and isinstance(value, str):
        Decimal(value)  # a decimal string, whatever the run's duration made it
        return "<decimal>"
    if isinstance(value, str) and key != "sha256":  # checksums of fixed content stay
        for pattern, placeholder in PATTERNS:
            value = pattern.sub(placeholder, value)
    return value


def check(name: str, body: Any) -> None:
    path = FIXTURES / f"{name}.json"
    shaped = normalize(body)
    if os.environ.get("UPDATE_API_FIXTURES"):
        path.write_text(json.dumps(shaped, indent=2, sort_keys=True) + "\n")
    assert shaped == json.loads(path.read_text()), f"{name} no longer matches {path}"


def test_object_shapes_match_the_frozen_fixtures(api: APIClient, user: Any) -> None:
    # The hardware list is whatever the database holds: only the test's own CPU here.
    Hardware.objects.exclude(sku="cpu").delete()
    version = publish(user, "hello")
    stream_version = publish(user, "text-stream")
    Collection.objects.create(slug="demos", name="Demos", description="Demo models")
    Collection.objects.get(slug="demos").members.add(version.model)

    created = api.post(
        "/v1/predictions",
        {
            "version": version.id,
            "input": {"text": "shape"},
            "webhook": "http://127.0.0.1:9/hook",
            "webhook_events_filter": ["completed"],
        },
        format="json",
        headers={"Cancel-After": "10m"},
    ).json()
    check("prediction_created", created)
    prediction_claim(created["id"], None)  # type: ignore[arg-type]
    prediction_finish(
        created["id"],
        Outcome("succeeded", output="hello shape", logs="", metrics={"predict_time": 0.1}),
    )
    check("prediction_succeeded", api.get(f"/v1/predictions/{created['id']}").json())
    failed = api.post(
        "/v1/predictions", {"version": stream_version.id, "input": {}}, format="json"
    ).json()
    prediction_finish(failed["id"], Outcome("failed", error="boom"))
    check("prediction_failed_streamable", api.get(f"/v1/predictions/{failed['id']}").json())
    check("prediction_page", api.get("/v1/predictions").json())

    runs.flush()  # run counts reach the model as the autoscaler's leader flushes them
    check("model", api.get("/v1/models/alice/hello").json())
    check("version", api.get(f"/v1/models/alice/hello/versions/{version.id}").json())
    check("version_page", api.get("/v1/models/alice/hello/versions").json())
    check("collection_page", api.get("/v1/collections").json())
    check("collection", api.get("/v1/collections/demos").json())
    check("hardware_list", api.get("/v1/hardware").json())
    check("account", api.get("/v1/account").json())
    check("webhook_secret", api.get("/v1/webhooks/default/secret").json())

    content = SimpleUploadedFile("a.txt", b"abc", content_type="text/plain")
    check("file", api.post("/v1/files", {"content": content}, format="multipart").json())

    delivery = webhooks.WebhookDelivery.objects.get()
    webhooks.deliver(delivery.pk)  # nothing listens on port 9: a recorded connection error
    deliveries = api.get(f"/v1/predictions/{created['id']}/webhooks").json()
    for attempt in deliveries["results"][0]["attempts"]:
        attempt["error"] = "<connection error>" if attempt["error"] else None
    check("webhook_deliveries", deliveries)

    check("problem_404", api.get("/v1/predictions/nope").json())
    check(
        "problem_422",
        api.post(
            "/v1/predictions", {"version": version.id, "input": {"nope": 1}}, format="json"
        ).json(),
    )
