from __future__ import annotations

import mimetypes
import time

from django.core.exceptions import PermissionDenied, SuspiciousFileOperation
from django.http import FileResponse, Http404, HttpRequest, HttpResponseRedirect
from django.http.response import HttpResponseBase

from marketplace import storage

# Lifetime of the bucket URL a redirect points at: long enough for a slow client to follow it.
REDIRECT_TTL = 300


def serve_file(request: HttpRequest, name: str) -> HttpResponseBase:
    """A stored file. Uploads and outputs need a signed, unexpired URL
    (``storage.signed_url``); cover images are public and served to whoever knows their random
    path. From S3 (unless ``S3_PRIVATE_STREAM``), a request without ``Authorization``
    (browsers, the JS client) is redirected to a short-lived presigned GET on the bucket, and
    one with it (the Python client sends its API token to every file URL, which S3 would refuse
    beside a presigned signature) is streamed by the app."""
    expires = None
    if name.startswith(storage.SIGNED_PREFIXES):
        valid = storage.check_signature(
            name, request.GET.get("expires", ""), request.GET.get("signature", "")
        )
        if valid is None:
            raise Http404("No such file")
        if not valid:
            raise PermissionDenied("This link has expired")
        expires = int(request.GET["expires"])
    elif not name.startswith(storage.PUBLIC_PREFIXES):
        raise Http404("No such file")
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
    return response
