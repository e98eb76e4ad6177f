from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from marketplace.catalog.models import Hardware, Version
from tests.conftest import free_port, wait_for
from tests.factories import publish

SERVER = Path(__file__).resolve().parent.parent / "stripe_server.py"


class StripeServer:
    """The loopback Stripe-compatible server (tests/stripe_server.py) as a real process."""

    def __init__(self, port: int, process: subprocess.Popen[bytes]):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.process = process

    def control(self, path: str, method: str = "", **data: str) -> Any:
        if data or method == "POST":
            response = httpx.post(f"{self.url}/_test/{path}", data=data, timeout=60)
        else:
            response = httpx.get(f"{self.url}/_test/{path}", timeout=60)
        response.raise_for_status()
        return response.json()

    def state(self) -> dict[str, Any]:
        return self.control("state")

    def objects(self, table: str) -> dict[str, Any]:
        return self.state()["objects"].get(table, {})


@pytest.fixture
def stripe_server() -> Iterator[StripeServer]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(SERVER), "--port", str(port)], stdout=subprocess.PIPE
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == b"ready"
    server = StripeServer(port, process)

    def up() -> bool:
        try:
            return httpx.get(f"{server.url}/_test/requests", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(up, timeout=10, message="the Stripe test server")
    yield server
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def stripe_env(settings: Any, stripe_server: StripeServer) -> dict[str, str]:
    """Point this process (and, through the returned env, child processes) at the server."""
    env = {
        "STRIPE_SECRET_KEY": "sk_test_" + secrets.token_hex(12),
        "STRIPE_WEBHOOK_SECRET": "whsec_" + secrets.token_hex(16),
        "STRIPE_CONNECT_WEBHOOK_SECRET": "whsec_" + secrets.token_hex(16),
        "STRIPE_API_BASE": stripe_server.url,
        "STRIPE_MAX_NETWORK_RETRIES": "0",
    }
    settings.STRIPE_SECRET_KEY = env["STRIPE_SECRET_KEY"]
    settings.STRIPE_WEBHOOK_SECRET = env["STRIPE_WEBHOOK_SECRET"]
    settings.STRIPE_CONNECT_WEBHOOK_SECRET = env["STRIPE_CONNECT_WEBHOOK_SECRET"]
    settings.STRIPE_API_BASE = stripe_server.url
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    return env


def priced(
    user: Any,
    name: str = "hello",
    *,
    per_second: str = "0.001",
    unit_price: str | None = None,
    price_unit: str = Version.PriceUnit.PREDICTION,
    example: str = "hello",
) -> Version:
    """An example (``text`` input) published for ``user`` on CPU at ``per_second`` $/s."""
    version = publish(user, example, name)
    Hardware.objects.filter(sku="cpu").update(price_per_second=Decimal(per_second))
    if unit_price is not None:
        Version.objects.filter(pk=version.pk).update(
            unit_price=Decimal(unit_price), price_unit=price_unit
        )
    return Version.objects.select_related("model__default_hardware", "model__owner").get(
        pk=version.pk
    )
