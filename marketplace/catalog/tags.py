"""Tags owners put on their models: the API (``tags`` in create and update bodies) and the edit
page both go through :func:`clean_tags` and :func:`set_tags`."""

from __future__ import annotations

import re
from typing import Any

from django.db import transaction

from marketplace.catalog import search
from marketplace.catalog.models import Model, Tag

MAX_TAGS = 10
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
    return True
