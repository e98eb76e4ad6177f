from __future__ import annotations

import hashlib
import hmac
import os
import shutil
from pathlib import Path
from string import Template
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from marketplace.registry.keys import bundle_pem
from marketplace.registry.tokens import notify_secret

TEMPLATE = Path(settings.BASE_DIR) / "deploy" / "registry" / "config.yml"


def render_config(*, listen: str, public_url: str, storage_dir: Path, state_dir: Path) -> str:
    """The registry's config for this site; writes the token certificate bundle beside it."""
    state_dir.mkdir(parents=True, exist_ok=True)
    bundle = state_dir / "token-bundle.crt"
    bundle.write_bytes(bundle_pem())
    http_secret = hmac.new(settings.SECRET_KEY.encode(), b"registry-http", hashlib.sha256)
    return Template(TEMPLATE.read_text()).substitute(
        storage_dir=storage_dir,
        listen=listen,
        http_secret=http_secret.hexdigest(),
        realm=f"{public_url}/registry/token",
        service=settings.REGISTRY_SERVICE,
        issuer=settings.REGISTRY_TOKEN_ISSUER,
        bundle=bundle,
        events_url=f"{public_url}/registry/events",
        notify_secret=notify_secret(),
    )


class Command(BaseCommand):
    help = "Run the image registry (docker-registry) configured for this site's token auth."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--listen", default=settings.REGISTRY_LISTEN)
        parser.add_argument(
            "--storage", default=settings.REGISTRY_STORAGE_DIR, help="image storage directory"
        )
        parser.add_argument("--print-config", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        state_dir = Path(settings.VAR_DIR) / "registry"
        config = render_config(
            listen=options["listen"],
            public_url=settings.REGISTRY_TOKEN_REALM_BASE or settings.PUBLIC_URL,
            storage_dir=Path(options["storage"]).resolve(),
            state_dir=state_dir,
        )
        if options["print_config"]:
            self.stdout.write(config)
            return
        binary = shutil.which("docker-registry") or shutil.which("registry")
        if binary is None:
            raise CommandError("docker-registry is not installed (apt-get install docker-registry)")
        path = state_dir / "config.yml"
        path.write_text(config)
        path.chmod(0o600)
        os.execv(binary, [binary, "serve", str(path)])  # noqa: S606 — becomes the registry
