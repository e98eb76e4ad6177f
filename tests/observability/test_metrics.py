"""``/metrics`` after a burst of predictions through a live stack, parsed with
prometheus_client's own text parser: counts and histogram sums match what the clients saw."""

from __future__ import annotations

import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import wait_for
from tests.factories import publish, token_for
from workers.runtimes.base import free_port

pytestmark = pytest.mark.django_db(transaction=True)

TERMINAL = ("succeeded", "failed", "canceled")


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample as {(name, sorted labels): value}."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def receiver() -> tuple[str, list[bytes]]:
    seen: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/hook", seen


def seconds_between(body: dict[str, Any], end: str, start: str) -> float:
    parse = datetime.fromisoformat
    return (parse(body[end]) - parse(body[start])).total_seconds()


@pytest.mark.slow
def test_metrics_after_a_burst_match_what_happened(
    start_web: Any, start_agent: Any, start_worker: Any, user: Any
) -> None:
    publish(user, "hello")
    publish(user, "slow-progress")
    web = start_web(METRICS_TOKEN="scrape-secret")
    start_agent(PUBLIC_URL=web.url)
    start_worker("webhooks", PUBLIC_URL=web.url, WEBHOOK_RETRY_DELAYS="3600")
    auth = {"Authorization": f"Bearer {token_for(user)}"}
    hook_url, hooks_seen = receiver()
    dead_hook = f"http://127.0.0.1:{free_port()}/nobody-listens"

    with httpx.Client(base_url=web.url, headers=auth, timeout=60) as api:
        ids = []
        for i in range(8):
            hook = {
                "webhook": hook_url if i < 6 else dead_hook,
                "webhook_events_filter": ["completed"],
            }
            created = api.post(
                "/v1/predictions",
                json={"version": "alice/hello", "input": {"text": str(i)}, **hook},
                headers={"Prefer": "wait"},
            )
            assert created.status_code == 201, created.text
            ids.append(created.json()["id"])
        slow = api.post(
            "/v1/predictions",
            json={"version": "alice/slow-progress", "input": {"steps": 100, "step_seconds": 0.1}},
        ).json()
        assert api.post(f"/v1/predictions/{slow['id']}/cancel").status_code == 200
        ids.append(slow["id"])

        def all_done() -> list[dict[str, Any]] | None:
            bodies = [api.get(f"/v1/predictions/{pid}").json() for pid in ids]
            return bodies if all(b["status"] in TERMINAL for b in bodies) else None

        bodies = wait_for(all_done, timeout=120, message="the burst to finish")
        wait_for(lambda: len(hooks_seen) == 6, timeout=30, message="six webhooks delivered")

        from marketplace.predictions.webhooks import WebhookAttempt

        wait_for(
            lambda: WebhookAttempt.objects.exclude(response_status=200).count() == 2,
            timeout=30,
            message="two failed webhook attempts",
        )
        assert httpx.get(f"{web.url}/metrics").status_code == 404
        assert httpx.get(f"{web.url}/metrics", headers=auth).status_code == 404
        scraped = httpx.get(f"{web.url}/metrics", headers={"Authorization": "Bearer scrape-secret"})
    assert scraped.status_code == 200
    values = samples(scraped.text)

    def value(name: str, **labels: str) -> float:
        return values[(name, tuple(sorted(labels.items())))]

    statuses = [b["status"] for b in bodies]
    assert statuses.count("succeeded") == 8 and statuses.count("canceled") == 1
    assert value("marketplace_predictions_created_total") == 9
    assert value("marketplace_predictions_completed_total", status="succeeded") == 8
    assert value("marketplace_predictions_completed_total", status="canceled") == 1
    assert value("marketplace_predictions_completed_total", status="failed") == 0
    assert value("marketplace_predictions_active", status="starting") == 0

    started = [b for b in bodies if b.get("started_at")]
    queue_sum = sum(b["metrics"]["queue_time"] for b in started)
    assert value("marketplace_prediction_phase_seconds_count", phase="queue") == len(started)
    assert value("marketplace_prediction_phase_seconds_sum", phase="queue") == pytest.approx(
        queue_sum, abs=1e-3
    )
    ran = [b for b in started if b.get("completed_at")]
    run_sum = sum(seconds_between(b, "completed_at", "started_at") for b in ran)
    assert value("marketplace_prediction_phase_seconds_count", phase="run") == len(ran)
    assert value("marketplace_prediction_phase_seconds_sum", phase="run") == pytest.approx(
        run_sum, abs=1e-3
    )
    # Two instances (one per version) booted.
    assert value("marketplace_prediction_phase_seconds_count", phase="setup") == 2
    assert value("marketplace_prediction_phase_seconds_bucket", phase="queue", le="+Inf") == len(
        started
    )

    assert value("marketplace_webhook_attempts_total", outcome="success") == 6
    assert value("marketplace_webhook_attempts_total", outcome="failure") == 2
    assert (
        value("marketplace_instances", state="ready")
        + value("marketplace_instances", state="stopping")
        + value("marketplace_instances", state="stopped")
        >= 1
    )
    hello_version = bodies[0]["version"]
    assert value("marketplace_queue_depth", version=hello_version, deployment="") == 0

    creates = value(
        "marketplace_http_request_duration_seconds_count",
        method="POST",
        route="v1/predictions",
        status="201",
    )
    assert creates == 9
    assert (
        value(
            "marketplace_http_request_duration_seconds_count",
            method="POST",
            route="v1/predictions/<str:prediction_id>/cancel",
            status="200",
        )
        == 1
    )


def test_metrics_are_refused_without_the_token_or_an_allowed_address(
    db: None, settings: Any
) -> None:
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOW_IPS = []
    assert Client().get("/metrics").status_code == 404
    settings.METRICS_TOKEN = "secret"
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer nope").status_code == 404
    ok = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer secret")
    assert ok.status_code == 200 and b"marketplace_predictions_created_total" in ok.content
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOW_IPS = ["10.0.0.0/8"]
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 404
    assert Client(REMOTE_ADDR="10.1.2.3").get("/metrics").status_code == 200


def test_gpu_usage_per_host(db: None, user: Any, settings: Any) -> None:
    from marketplace.deployments.models import Host, Instance
    from marketplace.metrics import exposition

    version = publish(user, "hello")
    gpus = [{"index": i, "uuid": f"GPU-{i}", "name": "A100"} for i in range(4)]
    host = Host.objects.create(name="gpu-1", gpus=gpus)
    Host.objects.create(name="gone", gpus=gpus[:1], down_at="2026-01-01T00:00:00Z")
    common = {"host": host, "version": version, "hardware_id": version.model.default_hardware_id}
    Instance.objects.create(**common, state="ready", gpu_device_ids=["GPU-0", "GPU-1"])
    Instance.objects.create(**common, state="stopped", gpu_device_ids=["GPU-2"])
    values = samples(exposition().decode())
    assert values[("marketplace_host_gpus", (("host", "gpu-1"), ("state", "used")))] == 2
    assert values[("marketplace_host_gpus", (("host", "gpu-1"), ("state", "free")))] == 2
    assert ("marketplace_host_gpus", (("host", "gone"), ("state", "used"))) not in values
    assert values[("marketplace_instances", (("state", "ready"),))] == 1
    assert values[("marketplace_queue_depth", (("deployment", ""), ("version", version.pk)))] == 0
