"""Who owns each stored file: one row per stored name.

Every file the platform stores (``marketplace.storage``) has a ``StoredFile`` row naming the
account that owns it, and for outputs the prediction that wrote it. Signing, serving, resolving
for a model and deleting all look the row up; a string that merely looks like one of our file
URLs grants nothing.

A new kind of file (training weights, say) is one ``Kind`` member and one ``POLICIES`` entry.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import models
from django.utils import timezone

from marketplace.accounts.models import Account


@dataclass(frozen=True)
class Policy:
    # Served to anyone who knows the (random) path, without a signature.
    public: bool = False
    # Retention deletes it with the last expired prediction of its account that used it.
    retention: bool = False


class StoredFileQuerySet(models.QuerySet["StoredFile"]):
    def of(self, account_id: int) -> StoredFileQuerySet:
        return self.filter(account_id=account_id)

    def named(self, names: Iterable[str]) -> StoredFileQuerySet:
        return self.filter(name__in=set(names))


class StoredFile(models.Model):
    class Kind(models.TextChoices):
        # A playground input (the site stores it before the prediction exists).
        UPLOAD = "upload"
        # The content of a ``/v1/files`` upload (``UploadedFile``: its own lifetime).
        FILE = "file"
        # What a prediction's model wrote.
        OUTPUT = "output"
        # A model's cover image, shown on public pages.
        COVER = "cover"
        # A training's weights, which a trained version runs with (``Version.weights``): kept
        # as long as the version exists, whatever happens to the training.
        WEIGHTS = "weights"

    name = models.CharField(max_length=500, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="stored_files")
    # Outputs: the prediction that wrote it (its account is ``account``).
    prediction = models.ForeignKey(
        "predictions.Prediction",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="output_files",
    )
    # Predictions whose input or output names it: retention deletes the file only when none of
    # them is kept any more.
    used_by = models.ManyToManyField(
        "predictions.Prediction", blank=True, related_name="files_used"
    )
    created_at = models.DateTimeField(default=timezone.now)

    objects = StoredFileQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["account", "kind"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind} of {self.account_id})"

    @property
    def policy(self) -> Policy:
        return POLICIES[self.Kind(self.kind)]

    @classmethod
    def record(
        cls, name: str, kind: str, account_id: int, prediction_id: str | None = None
    ) -> StoredFile:
        """The row of a file just stored (names are fresh random paths, never reused)."""
        stored = cls.objects.create(
            name=name, kind=kind, account_id=account_id, prediction_id=prediction_id
        )
        if prediction_id is not None:
            cls.used_by.through.objects.create(storedfile_id=stored.pk, prediction_id=prediction_id)
        return stored

    @classmethod
    def record_output(cls, name: str, prediction_id: str) -> StoredFile:
        """An output file a model of ``prediction_id`` wrote: owned by the prediction's account."""
        from marketplace.predictions.models import Prediction

        account_id = Prediction.objects.filter(pk=prediction_id).values_list(
            "account_id", flat=True
        )[0]
        return cls.record(name, cls.Kind.OUTPUT, account_id, prediction_id)


POLICIES: dict[StoredFile.Kind, Policy] = {
    StoredFile.Kind.UPLOAD: Policy(retention=True),
    StoredFile.Kind.FILE: Policy(),
    StoredFile.Kind.OUTPUT: Policy(retention=True),
    StoredFile.Kind.COVER: Policy(public=True),
    StoredFile.Kind.WEIGHTS: Policy(),
}


def kinds(**policy: Any) -> list[str]:
    """The kinds whose policy has the given values, e.g. ``kinds(retention=True)``."""
    return [
        kind.value
        for kind, p in POLICIES.items()
        if all(getattr(p, k) == v for k, v in policy.items())
    ]
