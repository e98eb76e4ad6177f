"""Trainings: a ``Prediction`` of kind ``training`` that runs a version's trainer (Cog's train
mode) and, when it succeeds, becomes a new version of its destination model.

Everything else is the prediction engine's: the one create path (``services.prediction_create``
with ``destination=``), its own pool per version (``scheduling.pools.training_pool``: train-mode
instances are other instances), the slot that runs it (``PUT /trainings/{id}`` on a Cog server
started with ``--x-mode train``), cancel, deadlines, the reconciler, webhooks and billing (its
ledger entry is marked ``kind=training``).

- **Destination** (``destination_resolve``, at create, before anything is stored): ``owner/name``.
  The caller must be able to write it (``Account.can_write``; a read-only token cannot). A model
  they cannot see, or an owner that does not exist, is a 404; one they see but may not write a
  403; an absent model under an account they may write is created private, in the create's own
  transaction (so a refused create leaves none behind).
- **Result** (``training_result``, in ``prediction_finish``'s transaction): the trainer's
  ``weights`` output (a file the agent stored, owned by the training) becomes a ``WEIGHTS``
  stored file, kept for as long as a version uses it (retention never deletes that kind), and a
  new ``Version`` of the destination: the base version's schema and code (image or directory),
  ``trained_from`` the base, ``training`` this training, ``weights`` the file's name. The
  training's output becomes ``{"version": "owner/name:<id>", "weights": <reference>}``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet

from marketplace import audit, storage
from marketplace.accounts.models import Account, AnyUser, member_accounts
from marketplace.catalog.models import Model, Version
from marketplace.files.models import StoredFile
from marketplace.predictions.refusals import DestinationRefused

DESTINATION_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.-]*)/([a-z0-9][a-z0-9_.-]*)\Z")


@dataclass
class Destination:
    """Where a training's version goes: an existing model, or one to create (private)."""

    owner: Account
    name: str
    model: Model | None = None

    @property
    def full_name(self) -> str:
        return f"{self.owner.username}/{self.name}"

    def model_for(self, base: Version) -> Model:
        """The destination model, created private now if absent. Call inside the create's
        transaction."""
        if self.model is not None:
            return self.model
        model, created = Model.objects.get_or_create(
            owner=self.owner,
            name=self.name,
            defaults={
                "visibility": Model.Visibility.PRIVATE,
                "default_hardware_id": base.model.default_hardware_id,
                "description": f"Trained from {base.model.full_name}",
            },
        )
        if created:
            audit.record("model.create", account=self.owner, target=model, via="training")
        self.model = model
        return model


def destination_resolve(name: Any, *, user: AnyUser) -> Destination:
    """The destination ``owner/name`` a training of ``user`` may write, or a refusal naming the
    field ``destination`` (404 unseen, 403 seen but not writable, 422 malformed)."""
    if not isinstance(name, str) or not name:
        raise DestinationRefused(422, "destination is required, as owner/name")
    match = DESTINATION_RE.match(name)
    if match is None:
        raise DestinationRefused(422, f"destination {name!r} is not of the form owner/name")
    owner_name, model_name = match.groups()
    model = Model.objects.visible_to(user).select_related("owner").named(owner_name, model_name)
    if model is not None:
        if not model.owner.can_write(user):
            raise DestinationRefused(403, f"You cannot write to the destination {model.full_name}")
        return Destination(owner=model.owner, name=model.name, model=model)
    if Model.objects.named(owner_name, model_name) is not None:
        # Someone else's private model: as if it did not exist.
        raise DestinationRefused(404, "The specified training destination does not exist")
    owner = Account.objects.filter(username__iexact=owner_name).first()
    if owner is None:
        raise DestinationRefused(404, "The specified training destination does not exist")
    if not owner.can_write(user):
        raise DestinationRefused(
            403, f"You cannot create models under {owner.username} (destination)"
        )
    return Destination(owner=owner, name=model_name)


def writable_models(user: AnyUser) -> QuerySet[Model]:
    """Models a training of ``user`` may use as its destination (the site's picker)."""
    return Model.objects.filter(owner__in=member_accounts(user, "member")).select_related("owner")


def version_id_for(base: Version, training_id: str) -> str:
    """A trained version's id: unique per training, stable if the result is recorded twice."""
    return hashlib.sha256(f"training:{base.pk}:{training_id}".encode()).hexdigest()


class NoWeights(Exception):
    """The trainer succeeded without a ``weights`` file the platform stored."""


def training_result(prediction: Any, output: Any) -> tuple[Version, dict[str, Any]]:
    """Make the trained version of a succeeded training (``prediction``, locked by the caller's
    transaction) from its trainer's ``output``; returns it and the training's API output.
    Raises NoWeights when the output holds no stored file of this training."""
    weights_ref = output.get("weights") if isinstance(output, dict) else output
    name = storage.name_of(weights_ref) if isinstance(weights_ref, str) else None
    stored = (
        StoredFile.objects.filter(name=name, prediction_id=prediction.pk).first() if name else None
    )
    if stored is None:
        raise NoWeights("The training finished without a weights file")
    # Kept as long as a version runs with it: retention never deletes this kind.
    StoredFile.objects.filter(pk=stored.pk).update(kind=StoredFile.Kind.WEIGHTS)
    base = Version.objects.select_related("model").get(pk=prediction.version_id)
    destination = Model.objects.select_related("owner").get(pk=prediction.destination_id)
    version, created = Version.objects.get_or_create(
        id=version_id_for(base, prediction.pk),
        defaults={
            "model": destination,
            "openapi_schema": base.openapi_schema,
            "cog_version": base.cog_version,
            "cog_config": base.cog_config,
            "image": base.image,
            "source_path": base.source_path,
            "trained_from": base,
            "training": prediction,
            "weights": stored.name,
        },
    )
    if created:
        audit.record(
            "version.create",
            account=destination.owner,
            target=version,
            via="training",
            training=prediction.pk,
            trained_from=base.pk,
        )
    api_output = {
        "version": f"{destination.full_name}:{version.pk}",
        "weights": storage.reference(stored.name),
    }
    return version, api_output
