"""The playground form: fields from the version's schema, bound to defaults, a past prediction's
input ("Tweak it") or a submission; uploads stored where Cog can fetch them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.http import HttpRequest

from marketplace.billing.services import PaymentRequired
from marketplace.catalog import formspec
from marketplace.catalog.formspec import Field
from marketplace.catalog.schema import REDACTED, FieldError
from marketplace.predictions.refusals import (
    CreateRefused,
    DestinationRefused,
    InputValidationError,
    QueueUnavailable,
)
from marketplace.predictions.services import PENDING_UPLOAD

URL_SUFFIX = "__url"


@dataclass
class BoundField:
    f: Field
    value: str = ""
    items: list[str] = field(default_factory=list)
    checked: bool = False
    error: str = ""

    @property
    def id(self) -> str:
        return f"input-{self.f.name}"

    @property
    def describedby(self) -> str:
        """The help text and the error, read out with the control."""
        ids = [f"{self.id}-help"] if self.f.description else []
        return " ".join([*ids, f"{self.id}-error"] if self.error else ids)


def bind(
    fields: Sequence[Field],
    values: Mapping[str, Any] | None = None,
    errors: Mapping[str, str] | None = None,
) -> list[BoundField]:
    """Fields with the values to show: given ones first, else the schema's defaults.

    Secrets are never shown back, whatever ``values`` holds.
    """
    values = values or {}
    errors = errors or {}
    bound = []
    for f in fields:
        b = BoundField(f, error=errors.get(f.name, ""))
        given = f.name in values and not f.secret
        value = values[f.name] if given else (f.default if f.has_default else None)
        if f.secret or value is None or value == REDACTED:
            pass
        elif f.widget == formspec.CHECKBOX:
            b.checked = bool(value)
        elif f.widget in (formspec.LIST, formspec.FILES):
            b.items = [formspec.value_text(f, v) for v in value] if isinstance(value, list) else []
        else:
            b.value = formspec.value_text(f, value)
        bound.append(b)
    return bound


def raw_values(fields: Sequence[Field], post: Mapping[str, Any]) -> dict[str, Any]:
    """What was typed, to show again beside errors (as the form's own strings)."""
    out: dict[str, Any] = {}
    getlist = getattr(post, "getlist", None)
    for f in fields:
        if f.widget == formspec.CHECKBOX:
            out[f.name] = f.name in post
        elif f.widget in (formspec.LIST, formspec.FILES):
            key = f.name if f.widget == formspec.LIST else f.name + URL_SUFFIX
            out[f.name] = [v for v in (getlist(key) if getlist else []) if v.strip()]
        elif f.widget == formspec.FILE:
            out[f.name] = post.get(f.name + URL_SUFFIX) or None
        elif f.name in post:
            out[f.name] = post.get(f.name)
    return out


def field_errors(errors: Sequence[FieldError]) -> dict[str, str]:
    """Service errors (``input.<name>``) → messages keyed by input name."""
    out: dict[str, str] = {}
    for error in errors:
        name = error.field.removeprefix("input.").split(".", 1)[0] or "__all__"
        out.setdefault(name, error.description)
    return out


@dataclass
class Refusal:
    """What a form shows when the create path refuses: messages keyed by field (``__all__`` above
    the form), the status to answer with, and whether to point at billing."""

    errors: dict[str, str]
    status: int = 422
    payment_required: bool = False


def refusal(exc: CreateRefused) -> Refusal:
    """The one mapping of create refusals to a form, for the playground and the Train tab."""
    if isinstance(exc, InputValidationError):
        return Refusal(field_errors(exc.errors))
    if isinstance(exc, DestinationRefused):
        return Refusal({"destination": exc.message})
    if isinstance(exc, PaymentRequired):
        return Refusal({"__all__": str(exc)}, payment_required=True)
    if isinstance(exc, QueueUnavailable):
        return Refusal({"__all__": str(exc)}, status=503)
    return Refusal({"__all__": str(exc)})


def upload_error(upload: UploadedFile) -> str:
    limit = settings.WEB_UPLOAD_MAX_BYTES
    if (upload.size or 0) > limit:
        return f"{upload.name} is larger than the {limit // 1024**2} MB upload limit."
    return ""


@dataclass
class Posted:
    """A submitted form as ``prediction_create`` takes it: the input (``PENDING_UPLOAD`` where an
    uploaded file goes), the uploads per field, and the errors found before any service call."""

    payload: dict[str, Any]
    files: dict[str, list[UploadedFile]]
    errors: dict[str, str]


def posted(fields: Sequence[Field], request: HttpRequest) -> Posted:
    """Parse a playground or Train form: typed values, uploaded files and pasted file URLs."""
    submission = formspec.parse_submission(fields, dict(request.POST.lists()))
    errors = dict(submission.errors)
    payload: dict[str, Any] = dict(submission)
    files: dict[str, list[UploadedFile]] = {}
    for f in fields:
        if f.widget not in (formspec.FILE, formspec.FILES):
            continue
        sent = request.FILES.getlist(f.name)
        urls = [u.strip() for u in request.POST.getlist(f.name + URL_SUFFIX) if u.strip()]
        for upload in sent:
            if message := upload_error(upload):
                errors[f.name] = message
        if sent:
            files[f.name] = list(sent)
            pending = [PENDING_UPLOAD] * len(sent)
            payload[f.name] = pending[0] if f.widget == formspec.FILE else pending + urls
        elif urls:
            payload[f.name] = urls[0] if f.widget == formspec.FILE else urls
    return Posted(payload, files, errors)


def example_input(fields: Sequence[Field]) -> dict[str, Any]:
    """An input for the API snippets: required values (placeholders if needed) and defaults."""
    placeholders = {
        formspec.FILE: "https://example.com/input.png",
        formspec.FILES: ["https://example.com/input.png"],
        formspec.TEXT: "...",
        formspec.TEXTAREA: "...",
        formspec.PASSWORD: "<secret>",
        formspec.CHECKBOX: False,
        formspec.LIST: [],
    }
    out: dict[str, Any] = {}
    for f in fields:
        if f.has_default and not f.secret and not f.deprecated:
            out[f.name] = f.default
        elif f.required:
            if f.widget == formspec.SELECT and f.choices:
                out[f.name] = f.choices[0]
            elif f.type in ("integer", "number"):
                out[f.name] = f.minimum if f.minimum is not None else 0
            else:
                out[f.name] = placeholders.get(f.widget, "...")
    return out
