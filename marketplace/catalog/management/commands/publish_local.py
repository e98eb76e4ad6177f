from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from marketplace.accounts.models import Account
from marketplace.catalog.cogschema import CogProjectError
from marketplace.catalog.models import Hardware, Model
from marketplace.catalog.services import version_publish_local


class Command(BaseCommand):
    help = "Publish a Cog project directory (cog.yaml + predict.py) as a new version of owner/name."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path)
        parser.add_argument(
            "--owner", required=True, help="The account (user name) that owns the model"
        )
        parser.add_argument("--name", required=True, help="The model's name")
        parser.add_argument("--hardware", help="Hardware SKU for new predictions (default: cpu)")
        parser.add_argument("--visibility", choices=[v.value for v in Model.Visibility])

    def handle(self, *args: Any, path: Path, owner: str, name: str, **options: Any) -> None:
        account = Account.objects.filter(username__iexact=owner).first()
        if account is None:
            raise CommandError(f"No account named {owner!r}; create the user first")
        hardware = None
        if options["hardware"]:
            hardware = Hardware.objects.filter(sku=options["hardware"], is_active=True).first()
            if hardware is None:
                raise CommandError(f"Unknown hardware SKU {options['hardware']!r}")
        try:
            version, created = version_publish_local(
                path=path,
                owner=account,
                name=name,
                hardware=hardware,
                visibility=options["visibility"],
            )
        except CogProjectError as exc:
            raise CommandError(str(exc)) from exc
        model = version.model
        verb = "Published" if created else "Unchanged, already published as"
        self.stderr.write(f"{verb} {model.full_name}:{version.pk}")
        self.stdout.write(version.pk)
