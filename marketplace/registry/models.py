"""What the platform saw pushed to the registry, and what it made of each image."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from marketplace.catalog.models import Model, Version


class ImagePush(models.Model):
    """One manifest pushed to ``repository``: published as a version, or refused with a reason.

    Keyed by repository + digest, so a redelivered notification or a reconcile pass finds the
    row and does nothing twice. The model page shows the refused ones ("why is my push not a
    version?").
    """

    class Outcome(models.TextChoices):
        PUBLISHED = "published"
        REJECTED = "rejected"

    repository = models.CharField(max_length=255)
    digest = models.CharField(max_length=80)
    tag = models.CharField(max_length=128, blank=True)
    model = models.ForeignKey(
        Model, null=True, blank=True, on_delete=models.CASCADE, related_name="image_pushes"
    )
    version = models.ForeignKey(
        Version, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    reason = models.TextField(blank=True)
    pushed_by = models.CharField(max_length=150, blank=True)
    event_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # Set when the manifest was deleted from the registry (its version is hidden then); cleared
    # if the same manifest is pushed again.
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint("repository", "digest", name="imagepush_repository_digest")
        ]
        indexes = [models.Index(fields=["model", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.repository}@{self.digest[:19]} ({self.outcome})"

    @classmethod
    def refused_since_last_version(cls, model: Model) -> list[ImagePush]:
        """Pushes of ``model`` that did not become versions and are newer than its latest
        version: what its owner should be told on the model page (see
        ``templates/registry/refused_pushes.html``)."""
        pushes = cls.objects.filter(model=model, outcome=cls.Outcome.REJECTED)
        latest = model.versions.order_by("-created_at").values_list("created_at", flat=True)
        if latest:
            pushes = pushes.filter(created_at__gt=latest[0])
        return list(pushes.order_by("-created_at")[:5])
