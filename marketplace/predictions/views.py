from __future__ import annotations

import mimetypes
import time

from django.core.exceptions import PermissionDenied, SuspiciousFileOperation
from django.http import FileResponse, Http404, HttpRequest, HttpResponseRedirect
from django.http.response import HttpResponseBase

from marketplace import storage
from marketplace.files.models import StoredFile

# Stored files are the platform's own origin serving what callers and models wrote: whatever
# they hold (HTML, SVG with script) runs in no origin and loads nothing.
FILE_CSP = "default-src 'none'; style-src 'unsafe-inline'; sandbox"
# Lifetime of the bucket URL a redirect points at: long enough for a slow client to follow it.
REDIRECT_TTL = 300


def serve_file(request: HttpRequest, name: str) -> HttpResponseBase:
    """A stored file that has an ownership row. Public kinds (cover images) are served to whoever
    knows their random path; every other file needs a signed, unexpired URL
    (``storage.signed_url``; the official clients fetch outputs without credentials). From S3
    (unless ``S3_PRIVATE_STREAM``), a request without ``Authorization`` (browsers, the JS
    client) is redirected to a short-lived presigned GET on the bucket, and one with it (the
    Python client sends its API token to every file URL, which S3 would refuse beside a
    presigned signature) is streamed by the app."""
    stored = StoredFile.objects.filter(name=name).only("kind").first()
    if stored is None:
        raise Http404("No such file")
    expires = None
    if not stored.policy.public:
        valid = storage.check_signature(
            name, request.GET.get("expires", ""), request.GET.get("signature", "")
        )
        if valid is None:
            raise Http404("No such file")
        if not valid:
            raise PermissionDenied("This link has expired")
        expires = int(request.GET["expires"])
    if storage.direct_urls() and "authorization" not in request.headers:
        left = REDIRECT_TTL if expires is None else expires - int(time.time())
        redirect = HttpResponseRedirect(
            storage.presigned_url(name, max(1, min(left, REDIRECT_TTL)))
        )
        redirect["Cache-Control"] = "private, max-age=60"
        return redirect
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
