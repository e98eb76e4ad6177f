"""Audit log. Call :func:`record` wherever a person changes something worth tracing."""

from __future__ import annotations

from typing import Any

from django.db import models


def record(
    action: str,
    *,
    actor: Any = None,
    account: Any = None,
    target: models.Model | None = None,
    request: Any = None,
    **data: Any,
) -> None:
    """Append one audit event. Call it inside the transaction that makes the change, so the
    event exists exactly when the change does.

    ``actor`` is a User (anything unauthenticated counts as the platform), ``account`` the Account
    whose resource changed, ``target`` the changed row, ``data`` JSON-able details (never secrets).
    """
    from marketplace.audit.models import AuditEvent

    if actor is not None and not getattr(actor, "is_authenticated", False):
        actor = None
    if request is not None and actor is None and getattr(request, "user", None) is not None:
        actor = request.user if request.user.is_authenticated else None
    AuditEvent.objects.create(
        action=action,
        actor=actor,
        account=account,
        target_type=(target._meta.model_name or "") if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_repr=str(target)[:300] if target is not None else "",
        data=data,
        ip=request.META.get("REMOTE_ADDR") if request is not None else None,
    )
