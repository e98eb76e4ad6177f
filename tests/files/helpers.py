"""What the file-access tests look for in answers: every signed URL, and whose file it reads."""

from __future__ import annotations

import html
import re

from django.conf import settings

from marketplace.files import references
from marketplace.files.models import StoredFile
from marketplace.predictions.uploads import UploadedFile


def signed_urls_in(text: str) -> list[str]:
    """Every URL in an answer (JSON, HTML, SSE) that carries one of our signatures."""
    text = html.unescape(text.replace("\\u0026", "&").replace("\\/", "/"))
    base = re.escape(settings.PUBLIC_URL)
    # Signatures are URL-safe base64, which ends them before any separator (", " in a page).
    found = re.findall(base + r"/files/[^\"'\s<>?]+\?expires=[0-9]+&signature=[\w-]+", text)
    found += re.findall(
        base + r"/v1/files/[a-z0-9]+/download[^\"'\s<>?]*\?[^\"'\s<>]*?signature=[\w-]+", text
    )
    return found


def owner_of(url: str) -> int | None:
    """The account id owning the file a (signed) URL reads, from the ownership rows."""
    ref = references.parse(url)
    if ref is None:
        return None
    if ref.kind == references.STORED:
        row = StoredFile.objects.filter(name=ref.key).values_list("account_id", flat=True)
        return row.first()
    return UploadedFile.objects.filter(pk=ref.key).values_list("account_id", flat=True).first()


def newly_signed_foreign(text: str, account_id: int, sent: set[str] | frozenset[str]) -> list[str]:
    """Signed URLs in ``text`` that we did not receive verbatim (``sent``) and that read a file
    ``account_id`` does not own: what must never appear."""
    return [url for url in signed_urls_in(text) if url not in sent and owner_of(url) != account_id]
