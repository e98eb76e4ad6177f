"""Ownership rows for the files stored before ownership was a row, so nothing stored breaks.

- ``/v1/files`` contents belong to their ``UploadedFile``'s account; covers to the model's owner.
- Outputs belong to the prediction whose output names them (``outputs/<its id>/…``, else the
  earliest prediction naming it in its output); playground uploads (``uploads/…``) to the account
  of the earliest prediction naming them in its input — the one that uploaded it, since the
  signing oracle could only copy a name into later predictions.
- A prediction uses the files it names that its own account owns (what retention consults).

References are recognised under today's ``PUBLIC_URL``; files named under an older one get no row
(they are then served to nobody, as retention would have removed them).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import migrations

BATCH = 1000


def _names(value: Any, prefix: str) -> list[str]:
    out: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if item.startswith(prefix):
                name = item[len(prefix) :].split("?", 1)[0]
                if name.startswith(("outputs/", "uploads/", "covers/")):
                    out.append(name)
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
    return out


def _storable(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return len(name) <= 500 and "\x00" not in name


def backfill(apps: Any, schema_editor: Any) -> None:
    StoredFile = apps.get_model("files", "StoredFile")
    UploadedFile = apps.get_model("predictions", "UploadedFile")
    Model = apps.get_model("catalog", "Model")
    Prediction = apps.get_model("predictions", "Prediction")
    prefix = f"{settings.PUBLIC_URL}{settings.MEDIA_URL}"

    # name → (kind, account id, prediction id)
    rows: dict[str, tuple[str, int, str | None]] = {}
    for name, account_id in UploadedFile.objects.exclude(content="").values_list(
        "content", "account_id"
    ):
        rows[name] = ("file", account_id, None)
    for name, owner_id in Model.objects.exclude(cover_image="").values_list(
        "cover_image", "owner_id"
    ):
        rows.setdefault(name, ("cover", owner_id, None))

    # (name, prediction id, its account id)
    uses: set[tuple[str, str, int]] = set()
    predictions = Prediction.objects.order_by("created_at", "id").values_list(
        "id", "account_id", "input", "output"
    )
    for pid, account_id, input, output in predictions.iterator(chunk_size=BATCH):
        for name in _names(output, prefix):
            if name not in rows and name.startswith("outputs/"):
                rows[name] = ("output", account_id, pid)
            uses.add((name, pid, account_id))
        for name in _names(input, prefix):
            if name not in rows and name.startswith("uploads/"):
                rows[name] = ("upload", account_id, None)
            uses.add((name, pid, account_id))
    # Outputs named only by a later prediction than the one that wrote them: the writer's prefix
    # says whose they are, when that prediction still exists.
    for name, (kind, _, pid) in list(rows.items()):
        parts = name.split("/")
        if kind == "output" and len(parts) > 2 and parts[1] != pid:
            writer = Prediction.objects.filter(pk=parts[1]).values_list("account_id").first()
            if writer is not None:
                rows[name] = ("output", writer[0], parts[1])

    StoredFile.objects.bulk_create(
        [
            StoredFile(name=name, kind=kind, account_id=account_id, prediction_id=pid)
            for name, (kind, account_id, pid) in rows.items()
            if _storable(name)
        ],
        batch_size=BATCH,
        ignore_conflicts=True,
    )
    ids = dict(StoredFile.objects.values_list("name", "id"))
    through = StoredFile.used_by.through
    through.objects.bulk_create(
        [
            through(storedfile_id=ids[name], prediction_id=pid)
            for name, pid, account_id in uses
            if name in ids and rows[name][1] == account_id
        ],
        batch_size=BATCH,
        ignore_conflicts=True,
    )


class Migration(migrations.Migration):
    dependencies = [
        ("files", "0001_stored_file"),
        ("catalog", "0004_model_idle_timeout"),
    ]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
