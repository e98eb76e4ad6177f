from __future__ import annotations

from typing import Any

import pytest
from django.test import Client


@pytest.fixture
def alice_client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client
