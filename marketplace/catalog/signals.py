"""Derived catalog data kept on every write path: the search document of a model, and which of
its versions is the latest (receivers, so that the API, the site, ``publish_local``, registry
pushes and factories all keep them)."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from marketplace.catalog import search
from marketplace.catalog.models import Model, Version


@receiver(post_save, sender=Model)
def model_saved(sender: type[Model], instance: Model, **kwargs: Any) -> None:
    if not kwargs.get("raw"):
        search.index_model(instance)


@receiver(post_delete, sender=Model)
def model_deleted(sender: type[Model], instance: Model, **kwargs: Any) -> None:
    search.forget_model(instance.pk)


@receiver(post_save, sender=Version)
@receiver(post_delete, sender=Version)
def version_changed(sender: type[Version], instance: Version, **kwargs: Any) -> None:
    if kwargs.get("raw"):
        return
    model = Model.objects.filter(pk=instance.model_id).first()
    if model is not None:  # gone when the model's deletion cascades to its versions
        model.refresh_latest_version()
