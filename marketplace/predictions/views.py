from __future__ import annotations

import mimetypes

from django.core.exceptions import PermissionDenied, SuspiciousFileOperation
from django.http import FileResponse, Http404, HttpRequest

from marketplace import storage
from marketplace.files.models import StoredFile

# Stored files are the platform's own origin serving what callers and models wrote: whatever
# they hold (HTML, SVG with script) runs in no origin and loads nothing.
FILE_CSP = "default-src 'none'; style-src 'unsafe-inline'; sandbox"


def serve_file(request: HttpRequest, name: str) -> FileResponse:
    """Stream a stored file that has an ownership row. Public kinds (cover images) are served to
    whoever knows their random path; every other file needs a signed, unexpired URL
    (``storage.signed_url``; the official clients fetch outputs without credentials)."""
    stored = StoredFile.objects.filter(name=name).only("kind").first()
    if stored is None:
        raise Http404("No such file")
    if not stored.policy.public:
        valid = storage.check_signature(
            name, request.GET.get("expires", ""), request.GET.get("signature", "")
        )
        if valid is None:
            raise Http404("No such file")
        if not valid:
            raise PermissionDenied("This link has expired")
    try:
        handle = storage.open_stream(name)
    except (FileNotFoundError, IsADirectoryError, SuspiciousFileOperation) as exc:
        raise Http404("No such file") from exc
    content_type, _ = mimetypes.guess_type(name)
    response = FileResponse(handle, content_type=content_type or "application/octet-stream")
    response["Cache-Control"] = "private, max-age=3600"
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = FILE_CSP
    return response
