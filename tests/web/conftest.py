from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from tests.factories import UserFactory, publish


@pytest.fixture
def alice_client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def mallory_client(outsider: Any) -> Client:
    client = Client()
    client.force_login(outsider)
    return client


@pytest.fixture
def input_types(user: Any) -> Any:
    return publish(user, "input-types", "input-types")


@pytest.fixture
def bob(db: None) -> Any:
    return UserFactory(username="bob")
