"""Webhooks: what a prediction's ``webhook`` receives, signed the Standard Webhooks way.

``notify`` runs in the prediction's hot path (claim, progress, finish): it costs one indexed
query when the prediction has no webhook. Otherwise it snapshots the prediction object as
``GET /v1/predictions/{id}`` would return it, records a delivery, and queues a job on the
``webhooks`` queue. ``output`` and ``logs`` deliveries go out at most once per 500 ms; ``start``
and ``completed`` always. Only the terminal delivery is retried, on an exponential schedule over
hours (``WEBHOOK_RETRY_DELAYS``); every attempt is recorded, and the owner can redeliver.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from django.conf import settings
from django.db import models
from django.utils import timezone
from rq import Queue
from standardwebhooks.webhooks import Webhook

from marketplace import netguard
from marketplace.files.access import sign_api
from marketplace.isotime import iso
from marketplace.jsonsafe import SafeJSONDecoder, SafeJSONEncoder
from marketplace.logcontext import prediction_context
from marketplace.redisconn import get_redis

logger = logging.getLogger(__name__)

START, OUTPUT, LOGS, COMPLETED = "start", "output", "logs", "completed"
EVENTS = (START, OUTPUT, LOGS, COMPLETED)
THROTTLED = frozenset({OUTPUT, LOGS})
THROTTLE_MS = 500
DELIVER = "workers.jobs.webhooks.deliver_webhook"
QUEUE = "webhooks"


def new_message_id() -> str:
    return "msg_" + secrets.token_urlsafe(18)


class WebhookDelivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"

    prediction = models.ForeignKey(
        "predictions.Prediction", on_delete=models.CASCADE, related_name="webhook_deliveries"
    )
    event = models.CharField(max_length=16)
    # The webhook-id header: the same on every retry, so receivers can deduplicate.
    message_id = models.CharField(max_length=64, unique=True, default=new_message_id)
    url = models.URLField(max_length=2000)
    payload = models.JSONField(encoder=SafeJSONEncoder, decoder=SafeJSONDecoder)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempt_count = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        app_label = "predictions"
        ordering = ["created_at", "id"]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"{self.event} webhook of {self.prediction_id} ({self.status})"

    @property
    def retried(self) -> bool:
        return self.event == COMPLETED

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.message_id,
            "event": self.event,
            "url": self.url,
            "status": self.status,
            "created_at": iso(self.created_at),
            "delivered_at": iso(self.delivered_at) if self.delivered_at else None,
            "next_attempt_at": iso(self.next_attempt_at) if self.next_attempt_at else None,
            "attempts": [a.to_api() for a in self.attempts.all()],
        }


class WebhookAttempt(models.Model):
    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempts")
    attempted_at = models.DateTimeField(default=timezone.now)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True)
    error = models.CharField(max_length=500, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        app_label = "predictions"
        ordering = ["attempted_at", "id"]
        # marketplace.rollups reads the attempts made since its last roll-up by this.
        indexes = [models.Index(fields=["attempted_at"], name="webhook_attempt_at")]

    def __str__(self) -> str:
        return f"attempt {self.pk} of {self.delivery_id}"

    @property
    def ok(self) -> bool:
        return self.response_status is not None and 200 <= self.response_status < 300

    def to_api(self) -> dict[str, Any]:
        return {
            "attempted_at": iso(self.attempted_at),
            "response_status": self.response_status,
            "error": self.error or None,
            "duration_ms": self.duration_ms,
        }


def _queue() -> Queue:
    return Queue(QUEUE, connection=get_redis())


def job_id(delivery_id: int) -> str:
    """A fresh job id naming its delivery: the reconciler tells a queued delivery from a lost
    one by it. (Fresh, because a retry is queued from inside the job it follows, and RQ deletes
    that job's id when it ends.)"""
    return f"webhook-{delivery_id}-{secrets.token_hex(4)}"


def queued_delivery_ids() -> set[int]:
    """Deliveries with a job waiting in the queue or scheduled for a retry."""
    queue = _queue()
    waiting = queue.get_job_ids() + queue.scheduled_job_registry.get_job_ids(cleanup=False)
    ids = set()
    for name in waiting:
        if name.startswith("webhook-") and name.count("-") == 2:
            ids.add(int(name.split("-")[1]))
    return ids


def enqueue(delivery_id: int, delay: float = 0) -> None:
    """Queue the delivery's next attempt (after ``delay`` seconds)."""
    kwargs: dict[str, Any] = {
        "job_timeout": int(settings.WEBHOOK_TIMEOUT) + 30,
        "result_ttl": 0,
        "job_id": job_id(delivery_id),
    }
    if delay > 0:
        _queue().enqueue_in(timedelta(seconds=delay), DELIVER, delivery_id, **kwargs)
    else:
        _queue().enqueue(DELIVER, delivery_id, **kwargs)


def wanted(events_filter: list[str] | None, event: str) -> bool:
    # No filter means every event (Replicate's and Cog's default).
    return not events_filter or event in events_filter


def notify(
    prediction_id: str, event: str, *, events_filter: list[str] | None = None
) -> WebhookDelivery | None:
    """Record and queue the ``event`` webhook of a prediction, if it wants one. Never raises:
    a broken webhook must not break the prediction. A caller that already knows the prediction
    has a webhook passes its ``events_filter`` (the lookup is skipped)."""
    from marketplace.predictions.models import Prediction

    try:
        row = events_filter
        if row is None:
            # The common case (no webhook) costs one narrow primary-key lookup.
            row = (
                Prediction.objects.filter(pk=prediction_id)
                .exclude(webhook="")
                .values_list("webhook_events_filter", flat=True)
                .first()
            )
        if row is None:
            return None
        if event == OUTPUT and not wanted(row, OUTPUT) and wanted(row, LOGS):
            event = LOGS  # a progress update carries the logs too
        if not wanted(row, event):
            return None
        if event in THROTTLED and not get_redis().set(
            f"mk:pred:{prediction_id}:webhook-throttle", "1", nx=True, px=THROTTLE_MS
        ):
            return None
        prediction = (
            Prediction.objects.select_related("model__owner", "version", "hardware", "instance")
            .defer("version__openapi_schema")
            .get(pk=prediction_id)
        )
        delivery = WebhookDelivery.objects.create(
            prediction=prediction,
            event=event,
            url=prediction.webhook,
            payload=prediction.to_api(signed=False),
        )
        enqueue(delivery.pk)
        return delivery
    except Exception:
        logger.exception("could not queue the %s webhook of %s", event, prediction_id)
        return None


def sign(secret: str, message_id: str, timestamp: datetime, body: str) -> str:
    return Webhook(secret).sign(message_id, timestamp, body)


def deliver(delivery_id: int) -> WebhookAttempt | None:
    """One attempt. Redirects count as failures (they are not followed); a failed terminal
    delivery is scheduled again until the retry schedule runs out."""
    delivery = (
        WebhookDelivery.objects.select_related("prediction__account").filter(pk=delivery_id).first()
    )
    if delivery is None or delivery.status != WebhookDelivery.Status.PENDING:
        return None
    with prediction_context(delivery.prediction_id):
        return _attempt(delivery)


def _attempt(delivery: WebhookDelivery) -> WebhookAttempt:
    # Stored files become signed URLs now, so that a retry hours later still carries live ones.
    body = json.dumps(sign_api(delivery.prediction, delivery.payload), separators=(",", ":"))
    now = datetime.now(UTC)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "marketplace-webhooks/1",
        "webhook-id": delivery.message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": sign(
            delivery.prediction.account.webhook_secret, delivery.message_id, now, body
        ),
    }
    attempt = WebhookAttempt(delivery=delivery)
    started = time.monotonic()
    try:
        with httpx.Client(follow_redirects=False, timeout=settings.WEBHOOK_TIMEOUT) as client:
            # Resolved and checked now, and sent to the checked address (no DNS rebinding).
            response = netguard.pinned_request(
                client, "POST", delivery.url, content=body.encode(), headers=headers
            )
        attempt.response_status = response.status_code
        attempt.response_body = response.text[:1000]
        if 300 <= response.status_code < 400:
            attempt.error = "Redirects are not followed"
    except netguard.Refused as exc:
        attempt.error = f"Refused: {exc}"[:500]
    except httpx.HTTPError as exc:
        attempt.error = (str(exc) or type(exc).__name__)[:500]
    attempt.duration_ms = int((time.monotonic() - started) * 1000)
    attempt.save()
    delivery.attempt_count += 1
    logger.info(
        "webhook %s attempt %d: %s",
        delivery.event,
        delivery.attempt_count,
        attempt.response_status or attempt.error,
    )
    delays = settings.WEBHOOK_RETRY_DELAYS
    if attempt.ok:
        delivery.status = WebhookDelivery.Status.DELIVERED
        delivery.delivered_at = timezone.now()
        delivery.next_attempt_at = None
    elif delivery.retried and delivery.attempt_count <= len(delays):
        delay = delays[delivery.attempt_count - 1]
        delivery.next_attempt_at = timezone.now() + timedelta(seconds=delay)
        enqueue(delivery.pk, delay)
    else:
        delivery.status = WebhookDelivery.Status.FAILED
        delivery.next_attempt_at = None
    delivery.save(update_fields=["status", "attempt_count", "delivered_at", "next_attempt_at"])
    return attempt


def redeliver(delivery: WebhookDelivery) -> WebhookDelivery:
    """The owner's "send it again": one more attempt now, with the same webhook-id."""
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=WebhookDelivery.Status.PENDING, next_attempt_at=None
    )
    enqueue(delivery.pk)
    delivery.refresh_from_db()
    return delivery
