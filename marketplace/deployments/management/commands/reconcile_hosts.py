from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from marketplace.deployments.services import reconcile_down_hosts


class Command(BaseCommand):
    help = (
        "Mark hosts whose agent stopped heartbeating as down: fail the predictions they were "
        "running and ask another host to serve their queued work. Live agents do this "
        "themselves; run it from cron when a host may be the only one."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        for down in reconcile_down_hosts():
            self.stdout.write(
                f"{down.host.name}: down; {len(down.failed)} prediction(s) failed, its queued "
                "work asked for new instances"
            )
