"""``manage.py purge_files``: delete expired ``/v1/files`` uploads (rows and stored content)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from marketplace.predictions.uploads import purge_expired


class Command(BaseCommand):
    help = (
        "Delete uploads older than FILES_TTL_HOURS (past their expires_at): the stored content "
        "and the record. Safe to run from several places at once; run it from cron or the "
        "systemd timer in deploy/systemd/."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        purged = purge_expired()
        self.stdout.write(f"purged {purged} expired upload(s)")
