"""``manage.py reconcile_predictions``: make stuck predictions and webhooks truthful again."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import close_old_connections

from marketplace.predictions.reconcile import reconcile


class Command(BaseCommand):
    help = (
        "Re-queue predictions whose queued job was lost, fail those whose instance is gone, "
        "cancel those past their deadline, and queue webhooks whose job was lost. Idempotent; "
        "agents run it every PREDICTION_RECONCILE_SECONDS. Run it from cron (or with --every) "
        "when no agent may be running."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--every", type=float, default=0, help="repeat every N seconds until interrupted"
        )

    def handle(self, *args: Any, every: float, **options: Any) -> None:
        while True:
            self.stdout.write(reconcile().summary())
            if every <= 0:
                return
            time.sleep(every)
            close_old_connections()
