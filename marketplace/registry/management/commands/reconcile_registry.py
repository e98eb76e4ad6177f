from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from marketplace.registry.services import reconcile


class Command(BaseCommand):
    help = (
        "Record pushes and deletes the notification endpoint missed (the registry keeps its "
        "notification queue in memory): walks the catalog, tags and manifests, and checks that "
        "recorded manifests still exist. Safe to run at any time."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("repositories", nargs="*", help="only these owner/name repositories")

    def handle(self, *args: Any, **options: Any) -> None:
        records = reconcile(options["repositories"] or None)
        for record in records:
            state = "deleted" if record.deleted_at else f"{record.outcome} {record.reason}"
            self.stdout.write(f"{record.repository}@{record.digest}: {state}")
        self.stdout.write(f"{len(records)} new push(es) or delete(s) recorded")
