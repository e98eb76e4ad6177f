from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from marketplace.rollups import totals


class Command(BaseCommand):
    help = (
        "Roll up ended predictions and webhook attempts for /metrics (scrapes also do it); "
        "--rebuild starts again from the first row, after importing history."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--rebuild", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["rebuild"]:
            totals.rebuild()
        else:
            for name in totals.WINDOWS:
                totals.roll(name)
        for row in totals.Rollup.objects.order_by("name"):
            self.stdout.write(str(row))
