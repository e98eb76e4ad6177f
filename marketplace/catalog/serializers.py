"""The API shapes of models, versions, collections and hardware (Replicate's ``/v1``)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from marketplace.catalog.models import Collection, Hardware, Model, Version
from marketplace.files.access import prime
from marketplace.isotime import iso
from marketplace.predictions.models import Prediction


def version_to_api(version: Version) -> dict[str, Any]:
    return {
        "id": version.id,
        "created_at": iso(version.created_at),
        "cog_version": version.cog_version or "",
        "openapi_schema": version.schema,
    }


Related = tuple[dict[int, Version], dict[int, Prediction], dict[int, list[str]]]


def model_to_api(model: Model, *, related: Related | None = None) -> dict[str, Any]:
    """``related`` is what :func:`models_to_api` loaded for a whole page at once."""
    latest_by_model, example_by_model, tags = related or _related([model])
    latest = latest_by_model.get(model.pk)
    example = example_by_model.get(model.pk)
    return {
        "url": model.url,
        "owner": model.owner.username,
        "name": model.name,
        "description": model.description or None,
        "visibility": model.visibility,
        "github_url": model.github_url or None,
        "paper_url": model.paper_url or None,
        "license_url": model.license_url or None,
        "run_count": model.run_count,
        "cover_image_url": model.cover_image_url,
        "is_official": False,
        "created_at": iso(model.created_at),
        "default_example": example.to_api() if example else None,
        "latest_version": version_to_api(latest) if latest else None,
        # Ours: what the owner tagged it with (also in /v1/search's metadata).
        "tags": tags.get(model.pk, []),
    }


def _related(models: list[Model]) -> Related:
    """Each model's latest visible version (kept on the model), newest example and tags, in
    three queries for any number of models."""
    ids = [m.pk for m in models]
    latest = {
        v.model_id: v
        for v in Version.objects.filter(pk__in=[m.latest_version_id for m in models]).defer(
            "openapi_schema"
        )
    }
    Version.load_schemas(list(latest.values()))
    tags: dict[int, list[str]] = {}
    for model_id, tag in (
        Model.tags.through.objects.filter(model_id__in=ids)
        .order_by("tag__name")
        .values_list("model_id", "tag__name")
    ):
        tags.setdefault(model_id, []).append(tag)
    examples: dict[int, Prediction] = {}
    for prediction in (
        Prediction.objects.select_related("model__owner", "version", "hardware", "instance")
        .defer("version__openapi_schema")
        .filter(model_id__in=ids, is_example=True)
        .order_by("model_id", "-created_at")
    ):
        examples.setdefault(prediction.model_id, prediction)
    prime(examples.values())
    return latest, examples, tags


def models_to_api(models: list[Model]) -> list[dict[str, Any]]:
    related = _related(models)
    return [model_to_api(m, related=related) for m in models]


def collection_to_api(collection: Collection, models: list[Model] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": collection.name,
        "slug": collection.slug,
        "description": collection.description or "",
    }
    if models is not None:
        data["full_description"] = collection.description or None
        data["models"] = models_to_api(models)
    return data


def hardware_to_api(hardware: Hardware) -> dict[str, str]:
    return {"sku": hardware.sku, "name": hardware.name}


class ModelCreateInput(serializers.Serializer):
    owner = serializers.CharField(max_length=39)
    name = serializers.CharField(max_length=100)
    visibility = serializers.ChoiceField(choices=Model.Visibility.choices)
    hardware = serializers.CharField(max_length=40)
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)
    github_url = serializers.URLField(required=False, allow_blank=True)
    paper_url = serializers.URLField(required=False, allow_blank=True)
    license_url = serializers.URLField(required=False, allow_blank=True)
    cover_image_url = serializers.URLField(required=False, allow_blank=True)
    tags = serializers.JSONField(required=False, help_text="ours: a list of tags")


class ModelUpdateInput(serializers.Serializer):
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)
    readme = serializers.CharField(required=False, allow_blank=True)
    github_url = serializers.URLField(required=False, allow_blank=True)
    paper_url = serializers.URLField(required=False, allow_blank=True)
    license_url = serializers.URLField(required=False, allow_blank=True)
    weights_url = serializers.URLField(required=False, allow_blank=True)
    tags = serializers.JSONField(required=False, help_text="ours: a list of tags")
