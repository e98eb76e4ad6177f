from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from marketplace.accounts.models import ApiToken, User
from marketplace.catalog.models import Model
from marketplace.catalog.services import version_publish_local

DEMO_USER = "demo"
# (directory under examples/, model name)
DEMO_MODELS = [
    ("hello", "hello"),
    ("image-filter", "image-filter"),
    ("text-stream", "text-stream"),
    ("input-types", "input-types"),
    ("slow-progress", "slow-progress"),
    ("hello-concurrent", "hello-concurrent"),
    ("text-train", "text-train"),
]


class Command(BaseCommand):
    help = (
        "Publish the demo models under the 'demo' user and print an API token for it (idempotent)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError("seed_demo is for development: it refuses to run with DEBUG off")
        user, created = User.objects.get_or_create(
            username=DEMO_USER, defaults={"email": "demo@example.com"}
        )
        if created:
            user.set_unusable_password()
            user.save()
        examples = Path(settings.BASE_DIR) / "examples"
        for directory, name in DEMO_MODELS:
            version, new = version_publish_local(
                path=examples / directory,
                owner=user.account,
                name=name,
                visibility=Model.Visibility.PUBLIC,
            )
            self.stderr.write(
                f"{'published' if new else 'up to date'}: {DEMO_USER}/{name}:{version.pk}"
            )
        self.stdout.write(self._token(user))

    def _token(self, user: User) -> str:
        # Keep one demo token across runs rather than minting a new one every `make run`.
        token_file = Path(settings.VAR_DIR) / "demo-token"
        if token_file.exists():
            raw = token_file.read_text().strip()
            if ApiToken.objects.authenticate(raw) is not None:
                return raw
        _, raw = ApiToken.create_for(user, name="demo")
        token_file.parent.mkdir(parents=True, exist_ok=True)
        token_file.write_text(raw + "\n")
        os.chmod(token_file, 0o600)
        return raw
