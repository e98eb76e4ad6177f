"""Tags owners put on their models: the API (``tags`` in create and update bodies) and the edit
page both go through :func:`clean_tags` and :func:`set_tags`."""

from __future__ import annotations

import re
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.db.models import Count

from marketplace.catalog import search
from marketplace.catalog.models import Model, Tag

MAX_TAGS = 10
TOP_TAGS = 24
TOP_TAGS_KEY = "catalog:top-tags"
TOP_TAGS_SECONDS = 60
TAG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*\Z")


def clean_tags(value: Any) -> list[str]:
    """The tags a list (API) or comma-separated text (the edit page) names, lowercased and
    without repeats; ValueError says what is wrong."""
    if isinstance(value, str):
        value = [part for part in value.split(",") if part.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("must be a list of strings")
    tags = list(dict.fromkeys(v.strip().lower() for v in value))
    if len(tags) > MAX_TAGS:
        raise ValueError(f"at most {MAX_TAGS} tags")
    for tag in tags:
        if len(tag) > 32 or not TAG_RE.match(tag):
            raise ValueError(
                f"{tag!r}: use lowercase letters and digits with single '-' between them "
                "(at most 32 characters)"
            )
    return tags


def set_tags(model: Model, tags: list[str]) -> bool:
    """Give ``model`` exactly these (cleaned) tags; True if they changed."""
    current = sorted(model.tags.values_list("name", flat=True))
    if current == sorted(tags):
        return False
    with transaction.atomic():
        for name in tags:
            Tag.objects.get_or_create(name=name)
        model.tags.set(Tag.objects.filter(name__in=tags))
        search.index_model(model)
    cache.delete(TOP_TAGS_KEY)
    return True


def top_tags() -> list[dict[str, Any]]:
    """The tags most public models carry, with their counts; remembered for a minute in each
    process (explore shows them on every visit; a change of tags here forgets them)."""
    tags = cache.get(TOP_TAGS_KEY)
    if tags is None:
        tags = list(
            Tag.objects.filter(models__visibility=Model.Visibility.PUBLIC)
            .annotate(n=Count("models"))
            .order_by("-n", "name")
            .values("name", "n")[:TOP_TAGS]
        )
        cache.set(TOP_TAGS_KEY, tags, TOP_TAGS_SECONDS)
    return list(tags)
