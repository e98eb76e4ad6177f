"""The create path's per-process caches (``marketplace.hotcache``) across two web processes: a
revoked token, a hidden version, a changed price and a model made private (whose version the
official client reads before a run) take effect on both within a second (``HOT_CACHE_SECONDS``),
even though the change happens in another process."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import httpx
import pytest

from marketplace.accounts.models import ApiToken
from marketplace.billing.models import Reservation
from marketplace.catalog.models import Hardware, Model, Version
from tests.factories import publish, token_for

pytestmark = pytest.mark.django_db(transaction=True)

# A change made at t is seen by every request that starts after t + HOT_CACHE_SECONDS.
AFTER = 1.05


def create(web: Any, token: str, ref: str) -> httpx.Response:
    return httpx.post(
        f"{web.url}/v1/predictions",
        json={"version": ref, "input": {"text": "x"}},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


def test_changes_reach_every_web_process_within_a_second(
    start_web: Any, user: Any, outsider: Any
) -> None:
    version = publish(user, "hello")
    token = token_for(user)
    stranger = token_for(outsider)
    webs = [start_web(), start_web()]
    ref = version.model.full_name
    # Warm both processes' caches: the token and the public version are now remembered.
    for web in webs:
        for _ in range(3):
            assert create(web, token, ref).status_code == 201

    # A changed price: reservations made after it use the new price on both.
    Hardware.objects.filter(sku="cpu").update(price_per_second=Decimal("0.5"))
    time.sleep(AFTER)
    for web in webs:
        response = create(web, token, ref)
        assert response.status_code == 201, response.text
        hold = Reservation.objects.get(prediction_id=response.json()["id"])
        assert hold.amount >= Decimal("0.5"), hold.amount

    # A hidden version: owner/name no longer runs it (there is no other version).
    Version.objects.filter(pk=version.pk).set_hidden(True)
    time.sleep(AFTER)
    for web in webs:
        assert create(web, token, ref).status_code == 422

    # A model made private: its version (the answer the official client reads before running
    # `owner/name:id`, cached as rendered) is 404 to others on both, and still the owner's.
    path = f"/v1/models/{ref}/versions/{version.pk}"
    for web in webs:
        for caller in (token, stranger):
            response = httpx.get(web.url + path, headers={"Authorization": f"Bearer {caller}"})
            assert response.status_code == 200 and response.json()["id"] == version.pk
    Model.objects.filter(pk=version.model_id).update(visibility=Model.Visibility.PRIVATE)
    time.sleep(AFTER)
    for web in webs:
        for caller, status in ((stranger, 404), (token, 200)):
            response = httpx.get(web.url + path, headers={"Authorization": f"Bearer {caller}"})
            assert response.status_code == status, response.text

    # A revoked token: 401 everywhere.
    Version.objects.filter(pk=version.pk).set_hidden(False)
    ApiToken.objects.all().delete()
    time.sleep(AFTER)
    for web in webs:
        assert create(web, token, f"{ref}:{version.pk}").status_code == 401
