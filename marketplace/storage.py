"""Stored files (uploads and outputs) and the signed, expiring URLs they are handed out as.

Files live in Django's default storage: the file system (``MEDIA_ROOT``) or an S3-compatible
bucket (``STORAGE_BACKEND=s3``, django-storages). The database refers to a stored file by its
*reference*, ``PUBLIC_URL + MEDIA_URL + name``, which never expires and grants nothing: every
time a file is handed to a person or a program the reference becomes a signed URL valid for
``SIGNED_URL_TTL`` seconds: an app URL under ``/files/`` carrying ``expires`` and an HMAC
``signature`` that ``serve_file`` checks. With S3 the app redirects it to a presigned GET (or
streams it, see :func:`signed_url`); model servers get presigned GETs directly
(:func:`download_url`).

This module only names, signs, reads and deletes. *Whether* a file may be signed for someone is
decided by its ownership row (``marketplace.files``), never by the shape of a string.
"""

from __future__ import annotations

import time
from typing import IO, Any
from urllib.parse import urlencode

from django.conf import settings
from django.core import signing
from django.core.files.storage import default_storage
from django.utils.crypto import constant_time_compare

# Where each kind of file is stored (random path segments below each).
SIGNED_PREFIXES = ("outputs/", "uploads/")
PUBLIC_PREFIXES = ("covers/",)
_SALT = "marketplace.storage.files"


def is_s3() -> bool:
    return str(settings.STORAGES["default"]["BACKEND"]).endswith("S3Storage")


def direct_urls() -> bool:
    """Whether signed URLs point at the object store itself (presigned S3 GETs)."""
    return is_s3() and not settings.S3_PRIVATE_STREAM


def reference(name: str) -> str:
    """The stable URL the database keeps for a stored file."""
    return f"{settings.PUBLIC_URL}{settings.MEDIA_URL}{name}"


def name_of(url: str) -> str | None:
    """The stored name a reference (signed or not) points at, or None for any other string."""
    prefix = f"{settings.PUBLIC_URL}{settings.MEDIA_URL}"
    if not url.startswith(prefix):
        return None
    name = url[len(prefix) :].split("?", 1)[0]
    return name if name.startswith(SIGNED_PREFIXES + PUBLIC_PREFIXES) else None


def _signature(name: str, expires: int) -> str:
    return signing.Signer(salt=_SALT).signature(f"{name}\n{expires}")


def signed_url(name: str, ttl: int | None = None) -> str:
    """A URL that reads the stored file for ``ttl`` seconds (default ``SIGNED_URL_TTL``): the
    app's own ``/files/`` URL, whatever the backend. With S3, ``serve_file`` answers it with a
    redirect to a presigned GET on the bucket, or streams the object itself when the request
    carries an ``Authorization`` header: the official Python client sends its API token with
    every file it reads, and S3 refuses a presigned request that also has one."""
    ttl = settings.SIGNED_URL_TTL if ttl is None else ttl
    expires = int(time.time()) + ttl
    query = urlencode({"expires": expires, "signature": _signature(name, expires)})
    return f"{reference(name)}?{query}"


def download_url(name: str, ttl: int | None = None) -> str:
    """A URL for a model server to download a stored file (it sends no credentials): a
    presigned GET on the bucket when it is reachable, else :func:`signed_url`."""
    ttl = settings.SIGNED_URL_TTL if ttl is None else ttl
    if direct_urls():
        return presigned_url(name, ttl)
    return signed_url(name, ttl)


def presigned_url(name: str, ttl: int) -> str:
    return str(default_storage.url(name, expire=ttl))  # type: ignore[call-arg]


def check_signature(name: str, expires: str, signature: str) -> bool | None:
    """True when valid, False when correctly signed but expired, None when not signed by us."""
    if not expires.isdigit() or not constant_time_compare(
        _signature(name, int(expires)), signature
    ):
        return None
    return int(expires) >= time.time()


def open_stream(name: str) -> IO[bytes]:
    """A file object reading the stored content in chunks, never whole: S3's streaming body
    (django-storages' own S3File would download the object first). Raises FileNotFoundError."""
    if is_s3():
        from botocore.exceptions import ClientError

        storage: Any = default_storage
        try:
            body: IO[bytes] = storage.connection.meta.client.get_object(
                Bucket=storage.bucket_name, Key=storage._normalize_name(name)
            )["Body"]
        except ClientError as exc:
            raise FileNotFoundError(name) from exc
        return body
    return default_storage.open(name, "rb")


def delete(name: str) -> None:
    """Remove a stored file; a missing one is not an error."""
    default_storage.delete(name)
