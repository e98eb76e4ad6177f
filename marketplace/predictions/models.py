"""Predictions: every field of Replicate's prediction object, plus what the platform needs.

The status is an explicit state machine: ``starting → processing → succeeded | failed | canceled``
(``starting`` may also end directly). Terminal states are final: every transition is a conditional
UPDATE on the current status, so a late or duplicate event can never move a prediction backwards.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from marketplace.accounts.models import Account, User
from marketplace.catalog.models import Hardware, Model, Version
from marketplace.files.access import sign_api
from marketplace.isotime import iso
from marketplace.jsonsafe import SafeJSONDecoder, SafeJSONEncoder
from marketplace.predictions.ids import new_capability_token, new_prediction_id


class IllegalTransition(Exception):
    pass


class Prediction(models.Model):
    # Not stored: set by the create path to where the prediction stood once queued
    # (``scheduling.starts.Enqueued``), so that the create's answer needs no other look.
    enqueued: Any = None

    class Status(models.TextChoices):
        STARTING = "starting"
        PROCESSING = "processing"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELED = "canceled"

    class Source(models.TextChoices):
        API = "api"
        WEB = "web"

    class Kind(models.TextChoices):
        # A training runs the version's trainer (Cog's train mode) and, when it succeeds, makes a
        # new version of ``destination`` from its weights (``predictions.trainings``).
        PREDICTION = "prediction"
        TRAINING = "training"

    TERMINAL = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELED})
    # Which statuses each status may move to.
    TRANSITIONS: dict[str, frozenset[str]] = {
        Status.STARTING: frozenset(
            {Status.PROCESSING, Status.SUCCEEDED, Status.FAILED, Status.CANCELED}
        ),
        Status.PROCESSING: frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELED}),
        Status.SUCCEEDED: frozenset(),
        Status.FAILED: frozenset(),
        Status.CANCELED: frozenset(),
    }

    id = models.CharField(
        primary_key=True, max_length=32, default=new_prediction_id, editable=False
    )
    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="predictions")
    version = models.ForeignKey(Version, on_delete=models.CASCADE, related_name="predictions")
    # The account that owns (and pays for) the prediction, and the person or token holder who
    # created it.
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="predictions")
    created_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The API token used, if any: spend caps may be set per token.
    created_by_token = models.ForeignKey(
        "accounts.ApiToken", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    hardware = models.ForeignKey(Hardware, on_delete=models.PROTECT, related_name="+")
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.API)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.PREDICTION)
    # Trainings: the model the trained version goes to (the new version is
    # ``trained_version``, the reverse of ``Version.training``).
    destination = models.ForeignKey(
        Model, null=True, blank=True, on_delete=models.SET_NULL, related_name="incoming_trainings"
    )

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.STARTING)
    input = models.JSONField(default=dict, encoder=SafeJSONEncoder, decoder=SafeJSONDecoder)
    output = models.JSONField(
        null=True, blank=True, encoder=SafeJSONEncoder, decoder=SafeJSONDecoder
    )
    logs = models.TextField(blank=True, default="")
    # Replicate's API distinguishes null (no error) from a message; keep that distinction.
    error = models.TextField(null=True, blank=True)  # noqa: DJ001
    metrics = models.JSONField(
        default=dict, blank=True, encoder=SafeJSONEncoder, decoder=SafeJSONDecoder
    )
    data_removed = models.BooleanField(default=False)
    # What it cost the account, set by billing in the transaction that ends it.
    cost = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    # The model owner features it on the model page (and in the API's examples).
    is_example = models.BooleanField(default=False)

    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    deadline = models.DateTimeField(null=True, blank=True)

    webhook = models.URLField(max_length=2000, blank=True)
    webhook_events_filter = models.JSONField(default=list, blank=True)

    # Ours: the capability token of urls.stream, and the instance that ran it.
    stream_token = models.CharField(
        max_length=64, default=new_capability_token, editable=False, unique=True
    )
    # Set when created through a deployment's endpoint.
    deployment = models.ForeignKey(
        "deployments.Deployment",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="predictions",
    )
    instance = models.ForeignKey(
        "deployments.Instance",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="predictions",
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["account", "-created_at"]),
            # /v1/trainings and the site's training history.
            models.Index(
                fields=["account", "-created_at"],
                condition=models.Q(kind="training"),
                name="prediction_trainings",
            ),
            models.Index(fields=["model", "-created_at"]),
            models.Index(fields=["status", "created_at"]),
            # marketplace.rollups reads what ended since its last roll-up by this.
            models.Index(fields=["completed_at"], name="prediction_completed_at"),
            # Model cards and the API's default_example read a model's featured examples.
            models.Index(
                fields=["model", "-created_at"],
                condition=models.Q(is_example=True),
                name="prediction_examples",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.id} ({self.status})"

    @property
    def is_terminal(self) -> bool:
        return self.status in self.TERMINAL

    @classmethod
    def check_transition(cls, current: str, new: str) -> None:
        if new not in cls.TRANSITIONS[current]:
            raise IllegalTransition(f"A {current} prediction cannot become {new}")

    @property
    def is_training(self) -> bool:
        return self.kind == self.Kind.TRAINING

    @property
    def urls(self) -> dict[str, str]:
        base = settings.PUBLIC_URL
        if self.is_training:
            return {
                "get": f"{base}/v1/trainings/{self.id}",
                "cancel": f"{base}/v1/trainings/{self.id}/cancel",
                "web": f"{base}/p/{self.id}",
            }
        urls = {
            "get": f"{base}/v1/predictions/{self.id}",
            "cancel": f"{base}/v1/predictions/{self.id}/cancel",
            "web": f"{base}/p/{self.id}",
        }
        if self.version.is_iterator_output:
            urls["stream"] = f"{base}/v1/streams/{self.stream_token}"
        return urls

    def total_time(self, completed_at: datetime) -> float:
        return round((completed_at - self.created_at).total_seconds(), 6)

    def to_api(self, *, signed: bool = True) -> dict[str, Any]:
        """The prediction object exactly as Replicate's API shapes it. The files it may hand out
        (``files.access``: its outputs, its account's files in its input) become signed,
        expiring URLs unless ``signed`` is off (webhook snapshots keep the references and are
        signed when each attempt is sent)."""
        data: dict[str, Any] = {
            "id": self.id,
            "model": self.model.full_name,
            "version": self.version_id,
            "input": self.input,
            "logs": self.logs,
            "output": self.output,
            "data_removed": self.data_removed,
            "error": self.error,
            "status": self.status,
            "created_at": iso(self.created_at),
            "urls": self.urls,
            "source": self.source,
            "metrics": self._api_metrics(),
            # Extensions no client rejects: the hardware it ran on and what it cost (USD).
            "hardware": self.hardware.sku if self.hardware_id else None,
            "cost": None if self.cost is None else f"{self.cost:f}",
        }
        if self.started_at:
            data["started_at"] = iso(self.started_at)
        if self.completed_at:
            data["completed_at"] = iso(self.completed_at)
        if self.deadline:
            data["deadline"] = iso(self.deadline)
        if self.webhook:
            data["webhook"] = self.webhook
            data["webhook_events_filter"] = self.webhook_events_filter
        if self.deployment_id:
            data["deployment"] = _deployment_name(self)
        if self.is_training and self.destination is not None:
            # Replicate's clients read the destination from output.version; ours says it early.
            data["destination"] = self.destination.full_name
        if signed:
            data = sign_api(self, data)
        return data

    def _api_metrics(self) -> dict[str, Any]:
        metrics = dict(self.metrics)
        if self.started_at is not None:
            metrics["queue_time"] = round((self.started_at - self.created_at).total_seconds(), 6)
            # Known when this prediction waited for its instance to boot.
            instance = self.instance if self.instance_id is not None else None
            if instance is not None and instance.ready_at and instance.ready_at > self.created_at:
                metrics["setup_time"] = round(
                    (instance.ready_at - instance.created_at).total_seconds(), 6
                )
        return metrics


# Deployments are never renamed, so each process remembers their names rather than joining
# them into every query that lists predictions.
_deployment_names: dict[int, str] = {}


def _deployment_name(prediction: Prediction) -> str:
    """``owner/name`` of the deployment a prediction was created through."""
    assert prediction.deployment_id is not None
    name = _deployment_names.get(prediction.deployment_id)
    if name is None:
        deployment = prediction.deployment
        assert deployment is not None
        name = f"{deployment.owner.username}/{deployment.name}"
        _deployment_names[prediction.deployment_id] = name
    return name


# Models defined beside their logic; imported here so that Django registers them.
from marketplace.predictions.uploads import UploadedFile  # noqa: E402
from marketplace.predictions.webhooks import WebhookAttempt, WebhookDelivery  # noqa: E402

__all__ = ["IllegalTransition", "Prediction", "UploadedFile", "WebhookAttempt", "WebhookDelivery"]
