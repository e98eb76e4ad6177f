"""``manage.py remove_expired_data``: apply the retention policy (``predictions.retention``)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from marketplace.predictions.retention import remove_expired_data


class Command(BaseCommand):
    help = (
        "Remove inputs, outputs, logs and stored files of predictions older than their account's "
        "retention (PREDICTION_RETENTION_DAYS by default); sets data_removed. Billing records "
        "are never touched. Safe to run from several places at once; run it hourly."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        cleared = remove_expired_data()
        self.stdout.write(f"removed the data of {cleared} prediction(s)")
