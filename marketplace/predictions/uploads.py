"""Files uploaded through ``POST /v1/files``.

The clients upload ``open()`` handles and blobs found in ``input`` and put the file's
``urls.get`` (``{PUBLIC_URL}/v1/files/{id}``) in their place. That URL needs the caller's token,
which a model server does not have: creates accept only the caller's own live files
(``marketplace.files.inputs``), and the runner swaps each for a signed download URL just before
it hands the input to Cog (``marketplace.files.access``). The stored content also has its
``StoredFile`` row (kind ``file``), created and deleted with it.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import logging
import os
import secrets
import time
from datetime import timedelta
from typing import Any
from urllib.parse import quote, urlencode

from django.conf import settings
from django.core.files import File
from django.core.files.storage import Storage, default_storage
from django.db import models
from django.utils import timezone
from django.utils.text import get_valid_filename

from marketplace import storage
from marketplace.accounts.models import Account, User
from marketplace.isotime import iso
from marketplace.jsonsafe import SafeJSONDecoder, SafeJSONEncoder
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
    metadata = models.JSONField(
        default=dict, blank=True, encoder=SafeJSONEncoder, decoder=SafeJSONDecoder
    )
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
        return {
            "id": self.id,
            "name": self.name,
            "content_type": self.content_type,
            "size": self.size,
            "etag": self.md5,
            "checksums": {"sha256": self.sha256, "md5": self.md5},
            "metadata": self.metadata,
            "created_at": iso(self.created_at),
            "expires_at": iso(self.expires_at),
            "urls": {"get": self.api_url},
        }

    def delete_content(self) -> None:
        """Remove the stored content and, on the file system, its ``uploads/<token>/``
        directory. A missing file is not an error."""
        from marketplace.files.models import StoredFile

        name = self.content.name
        if name:
            storage = self.content.storage
            storage.delete(name)
            _remove_empty_parent(storage, name)
            StoredFile.objects.filter(name=name).delete()

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

    def signed_url(self, ttl_seconds: int, *, download: bool = False) -> str:
        """A URL anyone can read the content from for ``ttl_seconds``. From a reachable bucket:
        the app's signed ``/files/`` URL (redirected to the bucket), or with ``download`` (for a
        model server, which sends no credentials) a presigned GET on the bucket itself.
        Otherwise the app's signed download URL, which streams it."""
        if storage.direct_urls():
            name = str(self.content.name)
            return (
                storage.download_url(name, ttl_seconds)
                if download
                else (storage.signed_url(name, ttl_seconds))
            )
        return self.signed_download_url(ttl_seconds)


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


def store_input_file(upload: File, account: Account) -> str:
    """Store a file sent with a create (the playground's uploads) under a random path, owned by
    ``account`` (who runs the prediction); return its reference, which the input keeps and the
    runner signs for the model server."""
    from marketplace.files.models import StoredFile

    filename = get_valid_filename((upload.name or "upload").rsplit("/", 1)[-1])[-100:] or "upload"
    name = default_storage.save(f"uploads/{secrets.token_urlsafe(16)}/{filename}", upload)
    StoredFile.record(name, StoredFile.Kind.UPLOAD, account.pk)
    return storage.reference(name)


def delete_stored(references: list[str]) -> None:
    """Remove files ``store_input_file`` stored for a create that then failed, and their rows."""
    from marketplace.files.models import StoredFile

    for reference in references:
        name = storage.name_of(reference)
        if name is not None:
            storage.delete(name)
            StoredFile.objects.filter(name=name).delete()


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
