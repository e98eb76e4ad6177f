"""The django-storages S3 backend as this project configures it (read by settings and tests)."""

from __future__ import annotations

from typing import Any

# Multipart parts of 8 MB, at most two in flight and two read ahead: a large upload costs the
# process a few tens of MB, never the file's size (s3transfer's defaults hold ten parts in memory).
PART_BYTES = 8 * 1024**2


def s3_storage(
    *,
    bucket: str,
    endpoint_url: str | None,
    access_key: str | None,
    secret_key: str | None,
    region: str | None,
    ttl: int,
) -> dict[str, Any]:
    from boto3.s3.transfer import TransferConfig

    transfer = TransferConfig(
        multipart_threshold=PART_BYTES,
        multipart_chunksize=PART_BYTES,
        max_concurrency=2,
        max_io_queue=2,
    )
    # s3transfer reads this many parts of a seekable upload into memory ahead (not a boto3
    # argument, but an attribute of the s3transfer config it extends).
    transfer.max_in_memory_upload_chunks = 2
    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": bucket,
            "endpoint_url": endpoint_url,
            "access_key": access_key,
            "secret_key": secret_key,
            "region_name": region,
            "querystring_auth": True,
            "querystring_expire": ttl,
            "signature_version": "s3v4",
            "file_overwrite": False,
            "default_acl": None,
            # Reads spool to disk past one part (0 would keep whole objects in memory).
            "max_memory_size": PART_BYTES,
            "transfer_config": transfer,
        },
    }
