"""The input-file rule every prediction create goes through (``prediction_create`` calls
:func:`check_input_files`, so the API, model and deployment endpoints and the playground all do).

A string in the input that points at one of our stored files or uploads (see
:mod:`marketplace.files.references`) is, in order:

1. a currently valid signed URL: kept exactly as given (it is resolved by its signature, never
   re-signed or extended);
2. a file the creating account owns (bare, expired or badly signed, ``/v1/files`` URL): kept as
   its canonical reference (``/files/<name>`` or ``/v1/files/<id>``), signed for the model at
   dispatch and in the prediction's representation;
3. anything else, in a file input (``format: uri``, or a list of them): an error naming the
   field; in any other input: the plain string it is, which no one ever signs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from marketplace import storage
from marketplace.accounts.models import Account
from marketplace.catalog.schema import FieldError, file_inputs
from marketplace.files import references
from marketplace.files.access import Owned
from marketplace.files.models import StoredFile
from marketplace.files.references import STORED


@dataclass
class InputFiles:
    # The input with the account's own file references in their canonical form.
    input: dict[str, Any]
    errors: list[FieldError] = field(default_factory=list)
    # Storage names of the account's files the input uses (retention keeps them while it lives).
    used: set[str] = field(default_factory=set)

    def record_uses(self, prediction_id: str) -> None:
        """Call inside the transaction that stores the prediction."""
        if not self.used:
            return
        through = StoredFile.used_by.through
        ids = StoredFile.objects.named(self.used).values_list("pk", flat=True)
        through.objects.bulk_create(
            [through(storedfile_id=pk, prediction_id=prediction_id) for pk in ids],
            ignore_conflicts=True,
        )


def check_input_files(
    *, openapi: dict[str, Any], input: dict[str, Any], account: Account
) -> InputFiles:
    """Apply the input-file rule for ``account`` creating a prediction with ``input``."""
    found = references.refs(input)
    if not found:
        return InputFiles(input)
    owned = Owned.load(ref for _, _, ref in found)
    files = file_inputs(openapi)
    result = InputFiles(input)
    canonical: dict[str, str] = {}
    for path, text, ref in found:
        mine = owned.account_owns(ref, account.pk)
        if mine and ref.kind == STORED:
            result.used.add(ref.key)
        if ref.valid:
            continue
        if mine:
            canonical[text] = (
                storage.reference(ref.key) if ref.kind == STORED else owned.uploads[ref.key].api_url
            )
        elif path.split(".")[1] in files:
            what = f"file {ref.key}" if ref.kind == references.UPLOAD else "this file"
            result.errors.append(
                FieldError(
                    path,
                    "invalid",
                    f"{path.removeprefix('input.')}: {what} does not exist (or has expired) in "
                    f"{account.username}'s files; upload it again, or give a signed URL that "
                    "has not expired",
                )
            )
    result.input = references.replace(input, canonical)
    return result
