"""The official Replicate clients (Python 1.0.7, JS 1.4.0), unchanged but for the base URL,
against a live stack: uvicorn, a host agent running real Cog servers, and an RQ worker for
webhooks and deadlines. One stack serves the whole module, so the Cog servers boot once."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import replicate
from django.utils import timezone
from PIL import Image
from replicate.webhook import Webhooks, WebhookSigningSecret

from marketplace.catalog.models import Collection
from marketplace.predictions.models import Prediction
from tests.conftest import wait_for
from tests.factories import publish, token_for

pytestmark = pytest.mark.django_db(transaction=True)

DEMOS = ("hello", "hello-concurrent", "image-filter", "input-types", "slow-progress", "text-stream")


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


class Receiver:
    """A webhook receiver on a free loopback port, recording every request."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], str]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook?customId=123"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def seed_history(version: Any, count: int) -> None:
    """Past predictions written directly, to page through."""
    now = timezone.now()
    Prediction.objects.bulk_create(
        Prediction(
            model=version.model,
            version=version,
            account=version.model.owner,
            hardware=version.model.default_hardware,
            status=Prediction.Status.SUCCEEDED,
            input={"text": str(i)},
            output=f"hello {i}",
            created_at=now - timedelta(hours=1, seconds=i),
            completed_at=now - timedelta(hours=1, seconds=i) + timedelta(milliseconds=5),
        )
        for i in range(count)
    )


def test_official_clients_run_everything_against_a_live_stack(
    start_web: Any, start_agent: Any, start_worker: Any, user: Any, js_client: Path
) -> None:
    versions = {name: publish(user, name) for name in DEMOS}
    collection = Collection.objects.create(slug="demos", name="Demos", description="Demo models")
    collection.members.add(*(v.model for v in versions.values()))
    seed_history(versions["hello"], 120)
    web = start_web()
    start_agent(max_instances=len(DEMOS), PUBLIC_URL=web.url)
    start_worker("--with-scheduler", "default", "webhooks")
    token = token_for(user)
    client = replicate.Client(api_token=token, base_url=web.url)

    # run() on every demo model; "owner/name" goes through /v1/models/{o}/{n}/predictions.
    assert client.run("alice/hello", input={"text": "py"}) == "hello py"
    assert client.run("alice/hello-concurrent", input={"text": "c"}) == "hello c"
    digest = client.run("alice/input-types", input={"count": 2, "color": "red", "api_token": "s3"})
    assert "red" in str(digest) and "s3" not in str(digest)
    slow = client.run("alice/slow-progress", input={"steps": 2, "step_seconds": 0.1})
    assert isinstance(slow, str) and slow
    words = client.run("alice/text-stream", input={"prompt": "the", "max_tokens": 6, "seed": 3})
    assert len("".join(words)) > 0

    # A version-pinned run (also fetches the version to check for iterator output).
    hello_id = versions["hello"].id
    assert client.run(f"alice/hello:{hello_id}", input={"text": "pin"}) == "hello pin"

    # A file input uploaded by the client with files.create, and a file output.
    image = io.BytesIO(png_bytes())
    output = client.run(
        "alice/image-filter", input={"image": image, "filter": "invert", "size": 40}
    )
    output_url = str(output)
    assert output_url.startswith(f"{web.url}/files/outputs/"), output_url
    filtered = Image.open(io.BytesIO(httpx.get(output_url).content))
    assert filtered.size == (40, 30)
    assert filtered.getpixel((0, 0))[0] < 100  # inverted red
    uploaded = client.files.list()
    assert uploaded and uploaded[0].checksums["sha256"]

    # create + wait + reload.
    prediction = client.predictions.create(version=hello_id, input={"text": "w"})
    assert prediction.status == "starting"
    prediction.wait()
    assert prediction.status == "succeeded" and prediction.output == "hello w"
    prediction.reload()
    assert prediction.metrics and "queue_time" in prediction.metrics

    # Listing > 100 predictions across pages.
    listed = [p.id for page in replicate.paginate(client.predictions.list) for p in page]
    assert len(listed) == len(set(listed)) == Prediction.objects.count() > 100

    # Cancel the slow model once it runs.
    running = client.predictions.create(
        version=versions["slow-progress"].id, input={"steps": 60, "step_seconds": 0.5}
    )
    wait_for(lambda: client.predictions.get(running.id).status == "processing", timeout=60)
    running.cancel()
    running.wait()
    assert running.status == "canceled"

    # Cancel-After while running: canceled at the deadline, with its start time kept.
    limited = httpx.post(
        f"{web.url}/v1/predictions",
        headers={"Authorization": f"Bearer {token}", "Cancel-After": "5s"},
        json={"version": versions["slow-progress"].id, "input": {"steps": 40, "step_seconds": 0.5}},
        timeout=10,
    ).json()
    assert limited["deadline"]
    ended = client.predictions.get(limited["id"])
    ended.wait()
    assert ended.status == "canceled" and ended.started_at is not None

    # stream() on the streaming model.
    events = list(
        client.stream("alice/text-stream", input={"prompt": "the", "max_tokens": 5, "seed": 1})
    )
    assert events and all(e.id for e in events)
    assert "".join(str(e) for e in events).strip()

    # Prefer: wait=1 ends with "starting"; the client then polls to completion.
    raw = httpx.post(
        f"{web.url}/v1/predictions",
        headers={"Authorization": f"Bearer {token}", "Prefer": "wait=1"},
        json={"version": versions["slow-progress"].id, "input": {"steps": 6, "step_seconds": 0.5}},
        timeout=10,
    )
    assert raw.status_code == 201 and raw.headers["Preference-Applied"] == "wait=1"
    assert raw.json()["status"] == "starting"
    later = client.predictions.get(raw.json()["id"])
    later.wait()
    assert later.status == "succeeded"
    assert client.run(
        f"alice/slow-progress:{versions['slow-progress'].id}",
        input={"steps": 4, "step_seconds": 0.5},
        wait=1,
    )

    # Models, versions, hardware, account, collections, search.
    model = client.models.get("alice/hello")
    assert model.latest_version is not None and model.latest_version.id == hello_id
    assert [v.id for v in model.versions.list()] == [hello_id]
    assert model.versions.get(hello_id).openapi_schema["components"]["schemas"]["Output"]
    assert {h.sku for h in client.hardware.list()} >= {"cpu"}
    account = client.accounts.current()
    assert (account.username, account.type) == ("alice", "user")
    assert [c.slug for c in client.collections.list()] == ["demos"]
    assert len(client.collections.get("demos").models or []) == len(DEMOS)
    assert "hello" in [m.name for m in client.models.search("hello")]
    assert {m.name for m in client.models.list()} == set(DEMOS)

    # A webhook delivered to a local receiver and verified with the client's own check.
    receiver = Receiver()
    hooked = client.predictions.create(
        version=hello_id,
        input={"text": "hook"},
        webhook=receiver.url,
        webhook_events_filter=["start", "completed"],
    )
    wait_for(
        lambda: any('"succeeded"' in body for _, body in receiver.requests),
        timeout=30,
        message="the completed webhook",
    )
    secret = WebhookSigningSecret(key=client.webhooks.default.secret().key)
    for headers, body in receiver.requests:
        Webhooks.validate(headers=headers, body=body, secret=secret)  # raises if invalid
        assert json.loads(body)["id"] == hooked.id
    assert {json.loads(b)["status"] for _, b in receiver.requests} <= {"processing", "succeeded"}

    # The JS client, on the same stack.
    config = {
        "baseUrl": web.url,
        "token": token,
        "owner": "alice",
        "versions": {"hello": hello_id, "slow": versions["slow-progress"].id},
        "pngBase64": base64.b64encode(png_bytes()).decode(),
        "collection": "demos",
    }
    before_js = Prediction.objects.count()
    started = time.monotonic()
    result = subprocess.run(
        ["node", "client_check.mjs"],
        cwd=js_client,
        env={"MK_CONFIG": json.dumps(config), "PATH": __import__("os").environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=240,
    )
    js = json.loads(result.stdout or "{}")
    assert result.returncode == 0 and "error" not in js, (js.get("error"), result.stderr)
    assert time.monotonic() - started < 240
    assert js["hello"] == "hello js" and js["helloPinned"] == "hello pinned"
    assert js["imageOutput"].startswith(f"{web.url}/files/outputs/")
    assert js["imageOutputStatus"] == 200 and js["imageOutputBytes"] > 0
    assert js["created"] == {"status": "succeeded", "output": "hello waited"}
    # The JS script creates four predictions before it lists, and lists each prediction once.
    assert js["listed"] == js["listedUnique"] == before_js + 4 > 100
    outputs = [c for c in js["stream"] if c["event"] == "output"]
    assert outputs and js["stream"][-1]["event"] == "done" and all(c["id"] for c in js["stream"])
    assert js["model"] == {"owner": "alice", "name": "hello", "latest": hello_id}
    assert js["versions"] == [hello_id] and js["version"] == hello_id
    assert {"sku": "cpu", "name": "CPU"} in js["hardware"]
    assert js["account"]["username"] == "alice"
    assert js["collections"] == ["demos"] and len(js["collection"]["models"]) == len(DEMOS)
    assert "alice/hello" in js["search"] and js["modelsListed"] == len(DEMOS)
    assert js["canceled"] == "canceled"
    assert js["waitTimeout"]
    assert js["webhookValid"] is True and js["webhookTampered"] is False
    assert js["webhookOutput"] == "hello hook"
