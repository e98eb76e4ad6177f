from __future__ import annotations

import mimetypes

from django.core.exceptions import PermissionDenied, SuspiciousFileOperation
from django.http import FileResponse, Http404, HttpRequest

from marketplace import storage


def serve_file(request: HttpRequest, name: str) -> FileResponse:
    """Stream a stored file. Uploads and outputs need a signed, unexpired URL
    (``storage.signed_url``; the official clients fetch outputs without credentials); cover
    images are public and served to whoever knows their random path."""
    if name.startswith(storage.SIGNED_PREFIXES):
        valid = storage.check_signature(
            name, request.GET.get("expires", ""), request.GET.get("signature", "")
        )
        if valid is None:
            raise Http404("No such file")
        if not valid:
            raise PermissionDenied("This link has expired")
    elif not name.startswith(storage.PUBLIC_PREFIXES):
        raise Http404("No such file")
    try:
        handle = storage.open_stream(name)
    except (FileNotFoundError, IsADirectoryError, SuspiciousFileOperation) as exc:
        raise Http404("No such file") from exc
    content_type, _ = mimetypes.guess_type(name)
    response = FileResponse(handle, content_type=content_type or "application/octet-stream")
    response["Cache-Control"] = "private, max-age=3600"
    response["X-Content-Type-Options"] = "nosniff"
    return response
