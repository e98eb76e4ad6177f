"""Files uploaded through ``POST /v1/files``, and their use as prediction inputs.

The clients upload ``open()`` handles and blobs found in ``input`` and put the file's
``urls.get`` (``{PUBLIC_URL}/v1/files/{id}``) in their place. That URL needs the caller's token,
which a model server does not have: creates check that every such URL names a live file of the
caller's account, and the runner swaps it for a short-lived signed download URL just before it
hands the input to Cog.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import logging
import os
import time
from datetime import timedelta
from typing import Any
from urllib.parse import quote, urlencode

from django.conf import settings
from django.core.files.storage import Storage
from django.db import models
from django.utils import timezone

from marketplace import storage
from marketplace.accounts.models import Account, User
from marketplace.predictions.ids import new_capability_token, new_prediction_id

logger = logging.getLogger(__name__)


def upload_path(instance: UploadedFile, filename: str) -> str:
    return f"uploads/{new_capability_token()}/{filename}"


class UploadedFileQuerySet(models.QuerySet["UploadedFile"]):
    def live(self) -> UploadedFileQuerySet:
        return self.filter(expires_at__gt=timezone.now())

    def of(self, account: Account) -> UploadedFileQuerySet:
        return self.live().filter(account=account)


class UploadedFile(models.Model):
    id = models.CharField(
        primary_key=True, max_length=32, default=new_prediction_id, editable=False
    )
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="files")
    created_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    name = models.CharField(max_length=255)
    content_type = models.CharField(max_length=255, default="application/octet-stream")
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    md5 = models.CharField(max_length=32)
    metadata = models.JSONField(default=dict, blank=True)
    content = models.FileField(upload_to=upload_path, max_length=500)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()

    objects = UploadedFileQuerySet.as_manager()

    class Meta:
        app_label = "predictions"
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["account", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.id} ({self.name})"

    @property
    def api_url(self) -> str:
        return f"{settings.PUBLIC_URL}/v1/files/{self.id}"

    def to_api(self) -> dict[str, Any]:
        from marketplace.predictions.models import _iso

        return {
            "id": self.id,
            "name": self.name,
            "content_type": self.content_type,
            "size": self.size,
            "etag": self.md5,
            "checksums": {"sha256": self.sha256, "md5": self.md5},
            "metadata": self.metadata,
            "created_at": _iso(self.created_at),
            "expires_at": _iso(self.expires_at),
            "urls": {"get": self.api_url},
        }

    def delete_content(self) -> None:
        """Remove the stored content and, on the file system, its ``uploads/<token>/``
        directory. A missing file is not an error."""
        name = self.content.name
        if name:
            storage = self.content.storage
            storage.delete(name)
            _remove_empty_parent(storage, name)

    def signed_download_url(self, ttl_seconds: int) -> str:
        expiry = int(time.time()) + ttl_seconds
        query = urlencode(
            {
                "owner": self.account.username,
                "expiry": expiry,
                "signature": sign(self.account.username, self.id, expiry),
            }
        )
        # The name as last segment: model servers keep it (and its extension) when they download.
        return f"{self.api_url}/download/{quote(self.name, safe='')}?{query}"


def default_expiry() -> Any:
    return timezone.now() + timedelta(hours=settings.FILES_TTL_HOURS)


def _signing_key() -> bytes:
    return hashlib.sha256(b"marketplace.files:" + settings.SECRET_KEY.encode()).digest()


def sign(owner: str, file_id: str, expiry: int) -> str:
    """Replicate's download signature: base64(HMAC-SHA256(secret, "{owner} {id} {expiry}"))."""
    mac = hmac.new(_signing_key(), f"{owner} {file_id} {expiry}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).decode().rstrip("=")


def signature_valid(owner: str, file_id: str, expiry: str, signature: str) -> bool:
    if not expiry.isdigit() or int(expiry) < time.time():
        return False
    return hmac.compare_digest(sign(owner, file_id, int(expiry)), signature)


def _file_id(value: str) -> str | None:
    prefix = f"{settings.PUBLIC_URL}/v1/files/"
    if not value.startswith(prefix):
        return None
    rest = value[len(prefix) :]
    return rest if rest and "/" not in rest and "?" not in rest else None


def _walk(value: Any, path: str) -> list[tuple[str, str]]:
    """Every (field path, file id) of our own file URLs inside an input value."""
    if isinstance(value, str):
        file_id = _file_id(value)
        return [(path, file_id)] if file_id else []
    if isinstance(value, dict):
        return [pair for k, v in value.items() for pair in _walk(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [pair for i, v in enumerate(value) for pair in _walk(v, f"{path}.{i}")]
    return []


def check_inputs(account: Account, input: Any) -> list[dict[str, str]]:
    """Problems with file URLs in an input: unknown, expired or another account's files."""
    refs = _walk(input, "input")
    if not refs:
        return []
    known = set(
        UploadedFile.objects.of(account)
        .filter(pk__in=[file_id for _, file_id in refs])
        .values_list("pk", flat=True)
    )
    return [
        {
            "type": "invalid",
            "field": field,
            "description": f"file {file_id} does not exist (or has expired)",
        }
        for field, file_id in refs
        if file_id not in known
    ]


def _replace(value: Any, urls: dict[str, str]) -> Any:
    if isinstance(value, str):
        file_id = _file_id(value)
        return urls.get(file_id, value) if file_id else value
    if isinstance(value, dict):
        return {k: _replace(v, urls) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace(v, urls) for v in value]
    return value


def resolve_inputs(payload: dict[str, Any]) -> dict[str, Any]:
    """Swap our file URLs (``/v1/files`` and stored references) for signed download URLs a model
    server can fetch without a token.

    Raises ``ValueError`` naming the field when a file expired (or was purged or deleted) while
    the prediction waited: the model could not download it anyway.
    """
    ttl = settings.PREDICTION_TIMEOUT + 3600
    # The site's own uploads (playground inputs) are stored references: signed like outputs.
    payload = storage.sign_urls(payload, ttl, download=True)
    refs = _walk(payload, "input")
    if not refs:
        return payload
    files = (
        UploadedFile.objects.live()
        .select_related("account")
        .filter(pk__in=[file_id for _, file_id in refs])
    )
    # A presigned GET straight from the bucket when the store is reachable; otherwise the app's
    # signed download URL, which streams it.
    urls = {
        f.pk: storage.download_url(str(f.content.name), ttl)
        if storage.direct_urls()
        else f.signed_download_url(ttl)
        for f in files
    }
    gone = [(field, file_id) for field, file_id in refs if file_id not in urls]
    if gone:
        field, file_id = gone[0]
        raise ValueError(
            f"The file {file_id} given as {field} has expired or was deleted before the "
            "prediction started; upload it again."
        )
    resolved: dict[str, Any] = _replace(payload, urls)
    return resolved


def _remove_empty_parent(storage: Storage, name: str) -> None:
    """Uploads live alone under ``uploads/<token>/``: drop that directory once it is empty
    (filesystem storage only; object stores have no directories)."""
    try:
        parent = os.path.dirname(storage.path(name))
    except NotImplementedError:
        return
    with contextlib.suppress(OSError):  # not empty, or already gone
        os.rmdir(parent)


def purge_expired(*, batch_size: int = 500, now: Any = None) -> int:
    """Delete uploads past ``expires_at``: their stored content first, then the row. Returns how
    many were purged.

    Content goes first so that a failure in between leaves an expired row (refused everywhere,
    and retried by the next run) rather than content nothing points at. Rows are taken with
    ``SKIP LOCKED`` in batches, so several purgers (or a purge beside the API's own deletes) never
    fight over a row.
    """
    from django.db import transaction

    cutoff = now or timezone.now()
    purged = 0
    while True:
        with transaction.atomic():
            rows = list(
                UploadedFile.objects.select_for_update(skip_locked=True)
                .filter(expires_at__lte=cutoff)
                .order_by("expires_at")[:batch_size]
            )
            if not rows:
                return purged
            for row in rows:
                row.delete_content()
            UploadedFile.objects.filter(pk__in=[r.pk for r in rows]).delete()
        purged += len(rows)
        logger.info("purged %d expired upload(s)", len(rows))
