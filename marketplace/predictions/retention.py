"""Data retention: inputs, outputs and logs of finished predictions are removed once they are
older than the account's ``retention_days`` (or ``PREDICTION_RETENTION_DAYS``).

What is removed: the stored files the prediction used (``StoredFile.used_by``: its outputs and
its playground uploads) that its own account owns and that no kept prediction uses any more
(``/v1/files`` uploads have their own lifetime, ``FILES_TTL_HOURS``; covers are never touched),
the input (``{}``), output (``null``) and logs, its live event stream, and the copies in its
webhook delivery snapshots; ``data_removed`` becomes true. What stays: the row and everything
billing needs (status, timings, metrics, hardware, cost, and its ``UsageEntry``, which is never
touched). Strings in the input that merely name other files decide nothing: another account's
files are never deleted.

Kept whatever their age: predictions featured as examples (``is_example``) — the only way a
prediction is shared beyond its account today — and so are the files they use.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from marketplace import storage
from marketplace.accounts.models import Account
from marketplace.files.models import StoredFile, kinds
from marketplace.predictions import events
from marketplace.predictions.models import Prediction
from marketplace.predictions.webhooks import WebhookDelivery
from marketplace.redisconn import get_redis

logger = logging.getLogger(__name__)

REMOVED_KEYS: dict[str, Any] = {"input": {}, "output": None, "logs": ""}


def _expired(now: datetime) -> Q:
    """Finished predictions past their account's retention (one clause per distinct override)."""
    default = timedelta(days=settings.PREDICTION_RETENTION_DAYS)
    clause = Q(account__retention_days__isnull=True, completed_at__lt=now - default)
    overrides = {
        days
        for days in Account.objects.exclude(retention_days=None)
        .values_list("retention_days", flat=True)
        .distinct()
        if days is not None
    }
    for days in overrides:
        clause |= Q(account__retention_days=days, completed_at__lt=now - timedelta(days=days))
    return clause


def remove_expired_data(*, now: datetime | None = None, batch_size: int = 200) -> int:
    """Remove the data of every expired prediction; return how many were cleared.

    Rows are taken with ``SKIP LOCKED`` in batches, files are deleted before the rows say so (a
    failure in between leaves a row that the next run clears again), and a prediction is never
    deleted: billing's ledger points at it.
    """
    now = now or timezone.now()
    expired = (
        Prediction.objects.filter(_expired(now), data_removed=False, is_example=False)
        .exclude(completed_at=None)
        .order_by("completed_at")
    )
    cleared = 0
    while True:
        with transaction.atomic():
            rows = list(
                expired.select_for_update(skip_locked=True, of=("self",)).only("id", "account_id")[
                    :batch_size
                ]
            )
            if not rows:
                return cleared
            ids = [row.pk for row in rows]
            _delete_files({row.pk: row.account_id for row in rows})
            Prediction.objects.filter(pk__in=ids).update(data_removed=True, **REMOVED_KEYS)
            _scrub_webhook_snapshots(ids)
            get_redis().delete(*(events.stream_key(pk) for pk in ids))
        cleared += len(rows)
        logger.info("removed the data of %d expired prediction(s)", len(rows))


def _delete_files(accounts: dict[str, int]) -> None:
    """Delete the files these predictions (id → account id) used that their own account owns,
    that retention may delete, and that no prediction outside them still keeps its data for."""
    uses = StoredFile.used_by.through.objects
    pairs = uses.filter(
        prediction_id__in=list(accounts), storedfile__kind__in=kinds(retention=True)
    ).values_list("storedfile_id", "prediction_id", "storedfile__account_id", "storedfile__name")
    candidates = {file_id: name for file_id, user, owner, name in pairs if owner == accounts[user]}
    still_used = set(
        uses.filter(storedfile_id__in=list(candidates), prediction__data_removed=False)
        .exclude(prediction_id__in=list(accounts))
        .values_list("storedfile_id", flat=True)
    )
    doomed = {pk: name for pk, name in candidates.items() if pk not in still_used}
    for name in doomed.values():
        storage.delete(name)
    StoredFile.objects.filter(pk__in=list(doomed)).delete()
    uses.filter(prediction_id__in=list(accounts)).delete()


def _scrub_webhook_snapshots(prediction_ids: list[str]) -> None:
    deliveries = WebhookDelivery.objects.filter(prediction_id__in=prediction_ids).only("payload")
    for delivery in deliveries:
        delivery.payload = {**delivery.payload, **REMOVED_KEYS, "data_removed": True}
        delivery.save(update_fields=["payload"])
