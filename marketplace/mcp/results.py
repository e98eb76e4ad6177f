"""What a tool answers: the API's objects as text, a prediction's images as thumbnails, and the
API's problem documents as tool errors.

A tool's answer is an MCP ``CallToolResult``: its ``structuredContent`` is the very object
``/v1`` would answer (a prediction with signed URLs, a model, a problem document), and its text
repeats it for clients that read text only. A finished prediction's output comes first, in the
form an assistant can use: text as text (an iterator's chunks joined as Cog's ``concatenate``
display asks), files as their signed URLs, and each image the prediction wrote as MCP image
content, thumbnail-sized, so that an assistant sees it without downloading the original.
"""

from __future__ import annotations

import base64
import io
import json
import logging
from typing import Any

import mcp_types as types
from django.http import Http404
from PIL import Image, UnidentifiedImageError
from rest_framework import exceptions

from marketplace import storage
from marketplace.api.errors import exception_handler, problem
from marketplace.catalog.schema import output_schema
from marketplace.files import references
from marketplace.files.access import Grants
from marketplace.files.references import STORED
from marketplace.predictions.models import Prediction
from marketplace.predictions.refusals import CreateRefused

logger = logging.getLogger(__name__)

THUMBNAIL_PIXELS = 256
MAX_IMAGES = 4
# Images larger than this are linked, not read (a thumbnail of a huge file costs too much).
MAX_IMAGE_BYTES = 20 * 1024 * 1024


def as_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def answer(body: Any, *, lead: list[types.ContentBlock] | None = None) -> types.CallToolResult:
    """A successful answer: ``body`` (an API object) as structured content and as JSON text,
    after ``lead`` (the output an assistant reads first)."""
    content: list[types.ContentBlock] = [*(lead or []), types.TextContent(text=as_json(body))]
    structured = body if isinstance(body, dict) else {"items": body}
    return types.CallToolResult(content=content, structured_content=structured)


def problem_body(exc: Exception) -> dict[str, Any] | None:
    """The problem document ``/v1`` answers for ``exc`` (its own exception handler decides),
    or None for an exception the API does not turn into one (a bug)."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    if not isinstance(exc, exceptions.APIException | CreateRefused):
        return None
    response = exception_handler(exc, {})
    if response is None:  # pragma: no cover - every APIException gets a response
        return None
    return dict(response.data)


def tool_error(body: dict[str, Any]) -> types.CallToolResult:
    """A tool error (``isError``) carrying the API's problem document: its title and detail as
    the text an assistant reads, the whole document as structured content."""
    text = f"{body.get('title', 'Error')} ({body.get('status')}): {body.get('detail', '')}".strip()
    return types.CallToolResult(
        content=[types.TextContent(text=text)], structured_content=body, is_error=True
    )


def internal_error() -> types.CallToolResult:
    return tool_error(dict(problem(500, "The server failed to handle this call.", "Error").data))


def output_text(prediction: Prediction, output: Any) -> str | None:
    """The output of a finished prediction as an assistant reads it, or None when it has none."""
    if output is None:
        return None
    schema = output_schema(prediction.version.schema) if prediction.version_id else {}
    if (
        isinstance(output, list)
        and all(isinstance(item, str) for item in output)
        and schema.get("x-cog-array-display") == "concatenate"
    ):
        return "".join(output)
    if isinstance(output, str):
        return output
    if isinstance(output, list) and all(isinstance(item, str) for item in output):
        return "\n".join(output)
    return as_json(output)


def thumbnails(prediction: Prediction) -> list[types.ImageContent]:
    """Thumbnails of the images among the files this prediction wrote (at most MAX_IMAGES), read
    from storage: only files the rows say it wrote (``files.access``), never a URL's say-so."""
    found = references.refs(prediction.output, "output")
    if not found:
        return []
    grants = Grants.of(prediction, prediction.output)
    images: list[types.ImageContent] = []
    for _, _, ref in found:
        if len(images) >= MAX_IMAGES:
            break
        if ref.kind != STORED or not grants.owned.wrote(ref, prediction.pk):
            continue
        image = _thumbnail(ref.key)
        if image is not None:
            images.append(image)
    return images


def _thumbnail(name: str) -> types.ImageContent | None:
    try:
        with storage.open_stream(name) as handle:
            data = handle.read(MAX_IMAGE_BYTES + 1)
    except (FileNotFoundError, OSError):
        logger.warning("output %s could not be read for a thumbnail", name)
        return None
    if len(data) > MAX_IMAGE_BYTES:
        return None
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.thumbnail((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))
            has_alpha = image.mode in ("RGBA", "LA", "P") and "transparency" in image.info
            has_alpha = has_alpha or image.mode in ("RGBA", "LA")
            out = io.BytesIO()
            if has_alpha:
                image.save(out, format="PNG", optimize=True)
                mime = "image/png"
            else:
                image.convert("RGB").save(out, format="JPEG", quality=85)
                mime = "image/jpeg"
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError):
        return None  # not an image (or not one Pillow reads): its URL is in the text
    return types.ImageContent(data=base64.b64encode(out.getvalue()).decode(), mime_type=mime)


def prediction_lead(prediction: Prediction, body: dict[str, Any]) -> list[types.ContentBlock]:
    """What an assistant reads first about a prediction: where it stands, then its output (the
    signed URLs of its files, as ``body`` has them) and thumbnails of its images."""
    status = body["status"]
    lines = [f"Prediction {prediction.pk} of {body['model']}: {status}."]
    if status in Prediction.TERMINAL:
        if body.get("error"):
            lines.append(f"Error: {body['error']}")
    else:
        lines.append(
            "It is still running: call get_prediction with its id to see it finish "
            "(or cancel_prediction to stop it)."
        )
    lead: list[types.ContentBlock] = [types.TextContent(text="\n".join(lines))]
    if status == Prediction.Status.SUCCEEDED:
        text = output_text(prediction, body.get("output"))
        if text is not None:
            lead.append(types.TextContent(text=text))
        lead.extend(thumbnails(prediction))
    return lead
