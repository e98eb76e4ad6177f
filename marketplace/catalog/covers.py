"""Model cover images: checked, fetched from a URL (``models.create``'s ``cover_image_url``)
through the outbound guard, and stored by :func:`store_cover`, the one function that writes a
cover (the API and the edit page both call it).

A URL the platform fetches on a caller's behalf is an SSRF risk like a webhook: it is resolved,
refused if internal (``netguard``), requested at the checked address, not redirected, and read
only up to ``COVER_MAX_BYTES``. The bytes must decode as a PNG, JPEG, WebP or GIF image (the
``Content-Type`` header alone proves nothing), and are stored under a random ``covers/`` path.
"""

from __future__ import annotations

import io

import httpx
from django.core.files.base import ContentFile, File
from PIL import Image, UnidentifiedImageError

from marketplace import netguard, storage
from marketplace.catalog.models import Model

COVER_MAX_BYTES = 5 * 1024 * 1024
FORMATS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "GIF": "gif"}
FETCH_TIMEOUT = 10.0


class CoverRefused(ValueError):
    """The image was refused; the message says why, for the person who gave it."""


def check_image(data: bytes) -> str:
    """The file extension of an acceptable cover image; CoverRefused otherwise."""
    if len(data) > COVER_MAX_BYTES:
        raise CoverRefused(f"the image is larger than {COVER_MAX_BYTES // 1024 // 1024} MB")
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
            kind = image.format or ""
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise CoverRefused("the file is not an image") from exc
    if kind not in FORMATS:
        raise CoverRefused(f"{kind or 'this'} images are not accepted: use PNG, JPEG, WebP or GIF")
    return FORMATS[kind]


def fetch_cover(url: str) -> ContentFile[bytes]:
    """Download a cover image through the outbound guard; CoverRefused says what went wrong."""
    try:
        with httpx.Client(follow_redirects=False, timeout=FETCH_TIMEOUT) as client:
            response = netguard.pinned_request(client, "GET", url, stream=True)
            try:
                if 300 <= response.status_code < 400:
                    raise CoverRefused("redirects are not followed: give the image's own URL")
                if response.status_code != 200:
                    raise CoverRefused(f"the URL answered {response.status_code}")
                content_type = response.headers.get("content-type", "").split(";")[0].strip()
                if content_type and not content_type.startswith("image/"):
                    raise CoverRefused(f"the URL serves {content_type}, not an image")
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > COVER_MAX_BYTES:
                    raise CoverRefused(
                        f"the image is larger than {COVER_MAX_BYTES // 1024 // 1024} MB"
                    )
                data = bytearray()
                for chunk in response.iter_bytes():
                    data.extend(chunk)
                    if len(data) > COVER_MAX_BYTES:
                        break
            finally:
                response.close()
    except netguard.Refused as exc:
        raise CoverRefused(str(exc)) from exc
    except httpx.HTTPError as exc:
        raise CoverRefused(f"the image could not be fetched: {exc or type(exc).__name__}") from exc
    extension = check_image(bytes(data))
    return ContentFile(bytes(data), name=f"cover.{extension}")


def store_cover(model: Model, content: File[bytes]) -> None:
    """Store ``content`` (already checked) as ``model``'s cover and drop the previous one. Every
    stored cover goes through here."""
    from marketplace.files.models import StoredFile

    previous = model.cover_image.name if model.cover_image else ""
    model.cover_image.save(content.name or "cover", content, save=False)
    Model.objects.filter(pk=model.pk).update(cover_image=model.cover_image.name)
    # Served only with its ownership row: the model's owner's.
    StoredFile.record(str(model.cover_image.name), StoredFile.Kind.COVER, model.owner_id)
    if previous and previous != model.cover_image.name:
        storage.delete(previous)
        StoredFile.objects.filter(name=previous, kind=StoredFile.Kind.COVER).delete()
