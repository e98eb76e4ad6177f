from __future__ import annotations

import mimetypes

from django.core.exceptions import SuspiciousFileOperation
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpRequest

# Only paths the platform generated with a random token in them are served.
SERVED_PREFIXES = ("outputs/", "covers/", "uploads/")


def serve_file(request: HttpRequest, name: str) -> FileResponse:
    """Stream a stored file. Paths hold a random token, so knowing the URL is the permission
    (the official clients fetch outputs without credentials, or with a Bearer header we ignore)."""
    if not name.startswith(SERVED_PREFIXES):
        raise Http404("No such file")
    try:
        if not default_storage.exists(name):
            raise Http404("No such file")
        handle = default_storage.open(name, "rb")
    except SuspiciousFileOperation as exc:
        raise Http404("No such file") from exc
    content_type, _ = mimetypes.guess_type(name)
    response = FileResponse(handle, content_type=content_type or "application/octet-stream")
    response["Cache-Control"] = "private, max-age=3600"
    response["X-Content-Type-Options"] = "nosniff"
    return response
