"""Which stored files a prediction may hand out, and to whom: the rows decide, never the string.

- **Showing a prediction** (API objects, webhooks, pages, streams): a reference in its output is
  signed when the prediction wrote that file; one in its input when the prediction's account owns
  the file (its playground uploads, its ``/v1/files`` uploads, its earlier outputs). Anything
  else stays the plain string it is.
- **Resolving for a model** (just before dispatch): the account's own files become signed URLs
  valid for the run; a currently valid signed URL is passed on unchanged; in a file input,
  anything else is an error naming the field (an own file that expired or was deleted since).

A valid signed URL is never re-signed or extended.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.conf import settings

from marketplace import storage
from marketplace.catalog.schema import file_inputs
from marketplace.files import references
from marketplace.files.models import StoredFile
from marketplace.files.references import STORED, UPLOAD, Ref

if TYPE_CHECKING:
    from marketplace.predictions.models import Prediction
    from marketplace.predictions.uploads import UploadedFile


@dataclass
class Owned:
    """The rows behind the references of some values, loaded in at most two queries."""

    # storage name → (owning account id, id of the prediction that wrote it, or None)
    stored: dict[str, tuple[int, str | None]] = field(default_factory=dict)
    # /v1/files id → live upload
    uploads: dict[str, UploadedFile] = field(default_factory=dict)

    @classmethod
    def load(cls, refs: Iterable[Ref]) -> Owned:
        from marketplace.predictions.uploads import UploadedFile

        refs = list(refs)
        names = {r.key for r in refs if r.kind == STORED}
        ids = {r.key for r in refs if r.kind == UPLOAD}
        owned = cls()
        if names:
            owned.stored = {
                name: (account_id, prediction_id)
                for name, account_id, prediction_id in StoredFile.objects.named(names).values_list(
                    "name", "account_id", "prediction_id"
                )
            }
        if ids:
            owned.uploads = {
                f.pk: f
                for f in UploadedFile.objects.live().select_related("account").filter(pk__in=ids)
            }
        return owned

    def account_owns(self, ref: Ref, account_id: int) -> bool:
        if ref.kind == STORED:
            row = self.stored.get(ref.key)
            return row is not None and row[0] == account_id
        upload = self.uploads.get(ref.key)
        return upload is not None and upload.account_id == account_id

    def wrote(self, ref: Ref, prediction_id: str) -> bool:
        row = self.stored.get(ref.key) if ref.kind == STORED else None
        return row is not None and row[1] == prediction_id

    def signed(self, ref: Ref, ttl: int | None = None, *, download: bool = False) -> str:
        """A signed URL for the file; ``download`` for a model server (``storage.download_url``:
        straight from a reachable bucket)."""
        if ref.kind == STORED:
            return (
                storage.download_url(ref.key, ttl)
                if download
                else (storage.signed_url(ref.key, ttl))
            )
        ttl = settings.SIGNED_URL_TTL if ttl is None else ttl
        return self.uploads[ref.key].signed_url(ttl, download=download)


def _refs(*values: Any) -> list[Ref]:
    return [ref for value in values for _, _, ref in references.refs(value)]


@dataclass
class Grants:
    """What one prediction may hand out signed."""

    prediction_id: str
    account_id: int
    owned: Owned

    @classmethod
    def of(cls, prediction: Prediction, *values: Any) -> Grants:
        """For ``values`` (default: the prediction's input and output), whose rows it loads."""
        if not values:
            cached: Grants | None = getattr(prediction, "_file_grants", None)
            if cached is not None:
                return cached
            values = (prediction.input, prediction.output)
        refs = _refs(*values)
        grants = cls(prediction.pk, prediction.account_id, Owned.load(refs) if refs else Owned())
        if values == (prediction.input, prediction.output):
            prediction._file_grants = grants  # type: ignore[attr-defined]
        return grants

    def sign_input(self, value: Any) -> Any:
        return self._sign(value, lambda ref: self.owned.account_owns(ref, self.account_id))

    def sign_output(self, value: Any) -> Any:
        return self._sign(value, lambda ref: self.owned.wrote(ref, self.prediction_id))

    def _sign(self, value: Any, granted: Any) -> Any:
        signed = {
            text: self.owned.signed(ref)
            for _, text, ref in references.refs(value)
            if not ref.valid and granted(ref)
        }
        return references.replace(value, signed)


def prime(predictions: Iterable[Prediction]) -> None:
    """Load the rows for a page of predictions at once (``to_api`` then makes no query)."""
    predictions = list(predictions)
    by_prediction = {p.pk: _refs(p.input, p.output) for p in predictions}
    owned = Owned.load([ref for refs in by_prediction.values() for ref in refs])
    for p in predictions:
        p._file_grants = Grants(p.pk, p.account_id, owned)  # type: ignore[attr-defined]


def sign_api(prediction: Prediction, data: dict[str, Any]) -> dict[str, Any]:
    """An API-shaped prediction (``to_api(signed=False)``, a webhook snapshot) with the files the
    prediction may hand out signed; nothing else is touched."""
    values = (data.get("input"), data.get("output"))
    grants = (
        Grants.of(prediction)
        if values == (prediction.input, prediction.output)
        else Grants.of(prediction, *values)
    )
    return {
        **data,
        "input": grants.sign_input(data.get("input")),
        "output": grants.sign_output(data.get("output")),
    }


def sign_output(prediction: Prediction, value: Any) -> Any:
    """An output value (or one streamed item of it) with the prediction's own files signed. No
    query unless it holds references."""
    if not _refs(value):
        return value
    return Grants.of(prediction, value).sign_output(value)


def has_refs(value: Any) -> bool:
    return bool(_refs(value))


class FileGone(ValueError):
    """A file input names a file that cannot be handed to the model (any more)."""


def resolve_for_model(
    payload: dict[str, Any], *, account_id: int, openapi: dict[str, Any]
) -> dict[str, Any]:
    """The input as the model server gets it: the account's own files as signed URLs valid for
    the whole run, valid signed URLs unchanged, other strings as they are.

    Raises :class:`FileGone` naming the field when a file input's reference no longer resolves
    (an upload that expired or was deleted while the prediction waited).
    """
    found = references.refs(payload)
    if not found:
        return payload
    owned = Owned.load(ref for _, _, ref in found)
    ttl = settings.PREDICTION_TIMEOUT + 3600
    files = file_inputs(openapi)
    signed: dict[str, str] = {}
    for path, text, ref in found:
        if ref.valid:
            continue
        if owned.account_owns(ref, account_id):
            signed[text] = owned.signed(ref, ttl, download=True)
        elif path.split(".")[1] in files:
            what = f"The file {ref.key}" if ref.kind == UPLOAD else "The file"
            raise FileGone(
                f"{what} given as {path} has expired or was deleted before the prediction "
                "started; upload it again."
            )
    resolved: dict[str, Any] = references.replace(payload, signed)
    return resolved
