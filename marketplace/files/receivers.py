"""Rows for files other apps store through a model field (``Model.cover_image``)."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_save
from django.dispatch import receiver

from marketplace.catalog.models import Model
from marketplace.files.models import StoredFile


@receiver(post_save, sender=Model)
def cover_owned_by_model_owner(sender: type[Model], instance: Model, **kwargs: Any) -> None:
    """A model's cover belongs to the model's owner, also after a transfer. Only cover rows are
    ever moved: a name already recorded as another kind keeps its owner."""
    name = instance.cover_image.name if instance.cover_image else ""
    if not name:
        return
    moved = StoredFile.objects.filter(name=name, kind=StoredFile.Kind.COVER).update(
        account_id=instance.owner_id
    )
    if not moved:
        StoredFile.objects.get_or_create(
            name=name, defaults={"kind": StoredFile.Kind.COVER, "account_id": instance.owner_id}
        )
