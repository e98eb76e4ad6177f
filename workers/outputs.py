"""Output files: stored through django-storages under unguessable names, each with its ownership
row (the prediction that wrote it, and so its account); the prediction keeps their references
(``marketplace.storage``), handed out as signed URLs."""

from __future__ import annotations

import base64
import binascii
import mimetypes
import re
import tempfile
from typing import IO, Any
from urllib.parse import unquote_to_bytes

from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from marketplace.files.models import StoredFile
from marketplace.predictions.ids import new_capability_token
from marketplace.storage import reference

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_CHUNK = 1024 * 1024


def _clean_name(filename: str) -> str:
    name = _SAFE_NAME.sub("_", filename.rsplit("/", 1)[-1]).strip("._") or "output"
    return name[:120]


def output_path(prediction_id: str, filename: str) -> str:
    return f"outputs/{prediction_id}/{new_capability_token()}/{_clean_name(filename)}"


def store_output_stream(
    prediction_id: str, filename: str, stream: IO[bytes], length: int, content_type: str
) -> str:
    """Copy an upload to storage without holding it in memory (spooled to disk past 8 MB, then a
    multipart upload on S3); return its reference."""
    with tempfile.SpooledTemporaryFile(max_size=8 * _CHUNK) as spool:
        remaining = length
        while remaining > 0:
            chunk = stream.read(min(_CHUNK, remaining))
            if not chunk:
                break
            spool.write(chunk)
            remaining -= len(chunk)
        spool.seek(0)
        if "." not in filename and content_type:
            filename += mimetypes.guess_extension(content_type.split(";")[0].strip()) or ""
        name = default_storage.save(output_path(prediction_id, filename), File(spool))
    StoredFile.record_output(name, prediction_id)
    return reference(name)


def store_data_uri(prediction_id: str, uri: str, index: int = 0) -> str:
    """Persist a ``data:`` output (what legacy Cog servers return) as a file; return its
    reference."""
    header, _, payload = uri.partition(",")
    mime = header[5:].split(";")[0] or "application/octet-stream"
    try:
        data = (
            base64.b64decode(payload) if header.endswith(";base64") else unquote_to_bytes(payload)
        )
    except binascii.Error:
        return uri
    extension = mimetypes.guess_extension(mime) or ".bin"
    name = default_storage.save(
        output_path(prediction_id, f"output-{index}{extension}"), ContentFile(data)
    )
    StoredFile.record_output(name, prediction_id)
    return reference(name)


def persist_data_uris(prediction_id: str, output: Any) -> Any:
    """Replace every ``data:`` string in an output (recursively) by a stored file's URL."""
    counter = iter(range(1_000_000))

    def walk(value: Any) -> Any:
        if isinstance(value, str) and value.startswith("data:"):
            return store_data_uri(prediction_id, value, next(counter))
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        return value

    return walk(output)
