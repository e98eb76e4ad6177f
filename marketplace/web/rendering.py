"""Markdown and output rendering for server-side pages (the live view redraws in static/js)."""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Iterable
from typing import Any

import markdown
import nh3
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from marketplace.catalog.formspec import OutputSpec

# nh3's defaults allow no scripts, styles, event handlers or javascript: URLs; links get
# rel="noopener noreferrer".
README_TAGS = nh3.ALLOWED_TAGS | {"img", "pre", "code", "table", "thead", "tbody", "tr", "th", "td"}


def markdown_html(text: str) -> SafeString:
    html = markdown.markdown(text or "", extensions=["fenced_code", "tables"])
    return mark_safe(nh3.clean(html, tags=README_TAGS))  # noqa: S308 - sanitized by nh3 just above


INLINE_TAGS = {"strong", "em", "code", "a"}


def inline_markdown(text: str) -> SafeString:
    """One line of markdown (a model's description): emphasis, code and links only."""
    html = markdown.markdown(text or "").removeprefix("<p>").removesuffix("</p>")
    return mark_safe(nh3.clean(html, tags=INLINE_TAGS))  # noqa: S308 - sanitized by nh3


def describe(models: Iterable[Any]) -> list[Any]:
    """The models, each with ``description_html`` for its card."""
    out = list(models)
    for model in out:
        model.description_html = inline_markdown(model.description)
    return out


def media_kind(url: Any) -> str:
    """image | audio | video | file, from a data: URI's MIME type or the URL's extension."""
    if not isinstance(url, str):
        return "file"
    if url.startswith("data:"):
        mime = url[5:].split(";", 1)[0].split(",", 1)[0]
    else:
        mime = mimetypes.guess_type(url.split("?", 1)[0])[0] or ""
    kind = mime.split("/", 1)[0]
    return kind if kind in ("image", "audio", "video") else "file"


def _media(url: Any) -> SafeString:
    if not isinstance(url, str) or not url.startswith(("http://", "https://", "data:", "/")):
        return format_html("<pre class='output-text'>{}</pre>", json.dumps(url))
    kind = media_kind(url)
    if kind == "image":
        return format_html("<img class='output-media' src='{}' alt='Output image'>", url)
    if kind in ("audio", "video"):
        return format_html("<{0} class='output-media' src='{1}' controls></{0}>", kind, url)
    name = url.rsplit("/", 1)[-1][:80] if not url.startswith("data:") else "file"
    return format_html("<a class='output-file' href='{}' download>Download {}</a>", url, name)


def render_output(value: Any, spec: OutputSpec) -> SafeString:
    """The output as HTML, chosen by the Output schema (cog-contract §6.2)."""
    if value is None:
        return mark_safe("")
    kind = spec.kind
    if kind == "file":
        return _media(value)
    if kind == "files" and isinstance(value, list):
        items = format_html_join("", "<li>{}</li>", ((_media(v),) for v in value))
        return format_html("<ul class='output-gallery'>{}</ul>", items)
    if kind == "concatenate" and isinstance(value, list):
        return format_html("<pre class='output-text'>{}</pre>", "".join(map(str, value)))
    if kind == "strings" and isinstance(value, list):
        items = format_html_join("", "<li>{}</li>", ((str(v),) for v in value))
        return format_html("<ul class='output-list'>{}</ul>", items)
    if kind == "text" and isinstance(value, str):
        if value.startswith(("http://", "https://", "data:")) and media_kind(value) != "file":
            return _media(value)
        return format_html("<pre class='output-text'>{}</pre>", value)
    if kind == "value":
        return format_html("<p class='output-value'>{}</p>", json.dumps(value))
    if kind == "object" and isinstance(value, dict):
        rows = format_html_join(
            "",
            "<dt>{}</dt><dd>{}</dd>",
            (
                (name, render_output(value.get(name), sub))
                for name, sub in spec.properties.items()
                if name in value
            ),
        )
        return format_html("<dl class='output-object'>{}</dl>", rows)
    return format_html("<pre class='output-text'>{}</pre>", json.dumps(value, indent=2))
