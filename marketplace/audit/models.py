"""The audit log: who did what to models, versions, deployments, tokens, memberships and
billing settings. Rows are only ever added."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from marketplace.accounts.models import Account, User


class AuditEvent(models.Model):
    # Whoever acted (null for the platform itself, e.g. a registry notification or a job).
    actor = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The account whose resource it was: its owners see the event.
    account = models.ForeignKey(
        Account, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_events"
    )
    # Dotted verb, e.g. "model.create", "token.revoke", "membership.role_change".
    action = models.CharField(max_length=64)
    target_type = models.CharField(max_length=32, blank=True)
    target_id = models.CharField(max_length=100, blank=True)
    # A readable name of the target when the event was written (it may be gone later).
    target_repr = models.CharField(max_length=300, blank=True)
    data = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["account", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor} {self.action} {self.target_repr}"
