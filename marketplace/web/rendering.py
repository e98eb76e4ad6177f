"""Markdown and output rendering for server-side pages (the live view redraws in static/js)."""

from __future__ import annotations

import functools
import json
import mimetypes
import re
from collections.abc import Iterable
from typing import Any

import markdown
import nh3
from django.utils.html import escape, format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from marketplace.catalog.formspec import OutputSpec

# nh3's defaults allow no scripts, styles, event handlers or javascript: URLs; links get
# rel="noopener noreferrer".
README_TAGS = nh3.ALLOWED_TAGS | {"img", "pre", "code", "table", "thead", "tbody", "tr", "th", "td"}


# Both are pure functions of the text, and rendering markdown is most of what a page of cards
# costs: each process remembers recent results.
@functools.lru_cache(maxsize=256)
def markdown_html(text: str) -> SafeString:
    html = markdown.markdown(text or "", extensions=["fenced_code", "tables"])
    return mark_safe(nh3.clean(html, tags=README_TAGS))  # noqa: S308 - sanitized by nh3 just above


INLINE_TAGS = {"strong", "em", "code", "a"}


@functools.lru_cache(maxsize=4096)
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


def cards(models: Iterable[Any]) -> list[Any]:
    """The models as cards: ``description_html`` and ``picture``, the cover image or else an
    image output of the newest featured example (one query for the examples of them all)."""
    from marketplace.files.access import sign_output
    from marketplace.predictions.models import Prediction

    out = describe(models)
    wanted = [m.pk for m in out if not m.cover_image]
    pictures: dict[int, str] = {}
    if wanted:
        examples = (
            Prediction.objects.filter(
                model_id__in=wanted, is_example=True, status=Prediction.Status.SUCCEEDED
            )
            .order_by("model_id", "-created_at")
            .only("pk", "model_id", "account_id", "input", "output")
        )
        for example in examples:
            image = example.model_id not in pictures and _first_image(example.output)
            if image:
                # Signed through the example's ownership of its output, like everywhere else.
                pictures[example.model_id] = str(sign_output(example, image))
    for model in out:
        model.picture = model.cover_image_url if model.cover_image else pictures.get(model.pk)
    return out


def _first_image(output: Any) -> str | None:
    """The first image URL in an output (a file, or a list or object of them)."""
    values = output if isinstance(output, list) else [output]
    if isinstance(output, dict):
        values = list(output.values())
    for value in values:
        web = isinstance(value, str) and value.startswith(("http://", "https://"))
        if web and media_kind(value) == "image":
            return str(value)
    return None


_TAG = re.compile(r"(<[^>]*>|&[#\w]+;)")


def highlight(text: str, query: str) -> SafeString:
    """``text`` (plain, or HTML from :func:`inline_markdown`) with the words that match the
    search query wrapped in ``<mark>``: same stems or prefixes as search matches them."""
    from marketplace.catalog import search

    html = str(text) if isinstance(text, SafeString) else str(escape(text))
    stems = [stem for _, stem in search.query_words(query)]
    if not stems:
        return mark_safe(html)  # noqa: S308 - escaped or sanitized above

    def mark(match: re.Match[str]) -> str:
        word = match.group(0)
        terms = search.terms(word)
        hit = terms and any(terms[0].startswith(stem) for stem in stems)
        return f"<mark>{word}</mark>" if hit else word

    parts = _TAG.split(html)
    # Only text between tags and entities is searched; tags and entities stay as they are.
    marked = [p if i % 2 else re.sub(r"[^\W_]+", mark, p) for i, p in enumerate(parts)]
    return mark_safe("".join(marked))  # noqa: S308 - only <mark> added to safe HTML


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
    # The file's name, without a signed URL's query string.
    name = url.split("?", 1)[0].rsplit("/", 1)[-1][:80] if not url.startswith("data:") else "file"
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
