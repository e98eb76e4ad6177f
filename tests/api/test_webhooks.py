"""Webhooks: Standard Webhooks signatures, filters, throttling, retries, redirects, redelivery."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from rest_framework.test import APIClient
from standardwebhooks.webhooks import Webhook

from marketplace.predictions import webhooks
from marketplace.predictions.models import Prediction
from marketplace.predictions.services import Outcome, prediction_claim, prediction_finish
from marketplace.predictions.webhooks import WebhookDelivery
from tests.conftest import wait_for
from tests.factories import publish

pytestmark = pytest.mark.django_db(transaction=True)


class Receiver:
    """A loopback receiver that answers with the statuses it is given, in order (then 200)."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = list(statuses)
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((self.path, dict(self.headers.items()), body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "/elsewhere")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook?customId=1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def receiver() -> Iterator[Any]:
    made: list[Receiver] = []

    def make(*statuses: int) -> Receiver:
        made.append(Receiver(list(statuses)))
        return made[-1]

    yield make
    for r in made:
        r.close()


def create(api: APIClient, version: Any, url: str, events: list[str] | None = None) -> Prediction:
    body: dict[str, Any] = {"version": version.id, "input": {"text": "w"}, "webhook": url}
    if events is not None:
        body["webhook_events_filter"] = events
    response = api.post("/v1/predictions", body, format="json")
    assert response.status_code == 201, response.json()
    return Prediction.objects.get(pk=response.json()["id"])


def test_signature_matches_the_standard_webhooks_test_vector() -> None:
    when = datetime.fromtimestamp(1614265330, UTC)
    signature = webhooks.sign(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        when,
        '{"test": 2432232314}',
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_filter_without_progress_events_sends_only_start_and_completed(
    api: APIClient, user: Any
) -> None:
    prediction = create(api, publish(user, "hello"), "http://127.0.0.1:9/", ["completed"])
    prediction_claim(prediction.id, None)  # type: ignore[arg-type]
    webhooks.notify(prediction.id, webhooks.OUTPUT)
    webhooks.notify(prediction.id, webhooks.LOGS)
    prediction_finish(prediction.id, Outcome("succeeded", output="x"))
    assert [d.event for d in WebhookDelivery.objects.all()] == ["completed"]


def test_lifecycle_deliveries_are_signed_filtered_and_throttled(
    api: APIClient, user: Any, receiver: Any
) -> None:
    hook = receiver()
    prediction = create(api, publish(user, "hello"), hook.url, ["start", "logs", "completed"])
    prediction_claim(prediction.id, None)  # type: ignore[arg-type]
    # Progress with output, filter without it: sent as logs; a second within 500 ms: dropped.
    webhooks.notify(prediction.id, webhooks.OUTPUT)
    webhooks.notify(prediction.id, webhooks.LOGS)
    prediction_finish(prediction.id, Outcome("succeeded", output="hello w"))
    deliveries = list(WebhookDelivery.objects.filter(prediction=prediction))
    assert [d.event for d in deliveries] == ["start", "logs", "completed"]
    for delivery in deliveries:
        webhooks.deliver(delivery.pk)
    assert len(hook.requests) == 3
    verifier = Webhook(user.account.webhook_secret)
    statuses = []
    for path, headers, body in hook.requests:
        assert path == "/hook?customId=1"
        verifier.verify(body, headers)  # raises on a bad signature
        statuses.append(json.loads(body)["status"])
    assert statuses == ["processing", "processing", "succeeded"]
    final = json.loads(hook.requests[-1][2])
    assert final == api.get(f"/v1/predictions/{prediction.id}").json()


def test_terminal_delivery_is_retried_with_backoff_by_the_worker(
    api: APIClient, user: Any, receiver: Any, start_worker: Any
) -> None:
    hook = receiver(500, 503)
    start_worker("--with-scheduler", "webhooks", WEBHOOK_RETRY_DELAYS="1,1,1")
    prediction = create(api, publish(user, "hello"), hook.url, ["completed"])
    prediction_finish(prediction.id, Outcome("failed", error="x"))
    delivery = WebhookDelivery.objects.get(prediction=prediction)
    wait_for(
        lambda: WebhookDelivery.objects.filter(pk=delivery.pk, status="delivered").exists(),
        timeout=30,
        message="the third attempt to succeed",
    )
    assert [a.response_status for a in delivery.attempts.all()] == [500, 503, 200]
    ids = {headers["webhook-id"] for _, headers, _ in hook.requests}
    assert ids == {delivery.message_id}  # the same id on every retry


def test_redirects_are_not_followed_and_intermediate_events_not_retried(
    api: APIClient, user: Any, receiver: Any
) -> None:
    hook = receiver(302)
    prediction = create(api, publish(user, "hello"), hook.url, ["start"])
    prediction_claim(prediction.id, None)  # type: ignore[arg-type]
    delivery = WebhookDelivery.objects.get(prediction=prediction)
    attempt = webhooks.deliver(delivery.pk)
    assert attempt is not None and attempt.response_status == 302
    assert attempt.error == "Redirects are not followed"
    assert [path for path, _, _ in hook.requests] == ["/hook?customId=1"]
    delivery.refresh_from_db()
    assert delivery.status == "failed" and delivery.next_attempt_at is None


def test_owner_sees_the_delivery_log_and_redelivers(
    api: APIClient, outsider_api: APIClient, user: Any, receiver: Any
) -> None:
    hook = receiver(500)
    prediction = create(api, publish(user, "hello"), hook.url, ["start"])
    prediction_claim(prediction.id, None)  # type: ignore[arg-type]
    delivery = WebhookDelivery.objects.get(prediction=prediction)
    webhooks.deliver(delivery.pk)
    log = api.get(f"/v1/predictions/{prediction.id}/webhooks").json()["results"]
    assert log[0]["status"] == "failed" and log[0]["attempts"][0]["response_status"] == 500
    url = f"/v1/predictions/{prediction.id}/webhooks/{delivery.message_id}/redeliver"
    assert outsider_api.post(url).status_code == 404
    assert api.post(url).status_code == 202
    webhooks.deliver(delivery.pk)  # what the queued job runs
    log = api.get(f"/v1/predictions/{prediction.id}/webhooks").json()["results"]
    assert log[0]["status"] == "delivered"
    assert [a["response_status"] for a in log[0]["attempts"]] == [500, 200]


def test_predictions_without_webhooks_record_nothing(api: APIClient, user: Any) -> None:
    version = publish(user, "hello")
    body = api.post("/v1/predictions", {"version": version.id, "input": {}}, format="json").json()
    prediction_claim(body["id"], None)  # type: ignore[arg-type]
    prediction_finish(body["id"], Outcome("succeeded", output="x"))
    assert WebhookDelivery.objects.count() == 0
