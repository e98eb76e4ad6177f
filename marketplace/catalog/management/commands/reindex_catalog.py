from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from marketplace.catalog import search
from marketplace.catalog.models import Model


class Command(BaseCommand):
    help = (
        "Rebuild the search index and each model's latest version (the site keeps both as it "
        "goes; this is for rows written around it, e.g. bench/seed_large.py's COPY)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        updated = Model.objects.all().refresh_latest_versions()
        indexed = search.reindex_all()
        self.stdout.write(f"latest versions of {updated} models; {indexed} models indexed")
