"""50 predictions at once against a prepaid balance that covers exactly 10 of them."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from threading import Barrier
from typing import Any

import httpx
import pytest
from django.db import connection

from marketplace.billing import services
from marketplace.billing.models import BillingAccount, Reservation
from marketplace.predictions.models import Prediction
from marketplace.predictions.services import PaymentRequired, prediction_create
from marketplace.scheduling import pools
from tests.billing.conftest import priced
from tests.factories import token_for

pytestmark = pytest.mark.slow
N, COVERED = 50, 10


def _prepaid_for(user: Any, settings: Any) -> Any:
    settings.PREDICTION_TIMEOUT = 100
    version = priced(user, per_second="0.001")  # worst case $0.10 each
    billing = services.billing_for(user.account)
    BillingAccount.objects.filter(pk=billing.pk).update(mode=BillingAccount.Mode.PREPAID)
    services.credits_grant(user.account, Decimal("1.00"), source="staff", reference="ten")
    return version


def _check(version: Any, user: Any, accepted: int) -> None:
    assert accepted == COVERED
    assert Prediction.objects.filter(account=user.account).count() == COVERED
    assert Reservation.objects.count() == COVERED
    assert sum(r.amount for r in Reservation.objects.all()) == Decimal("1.00")
    assert (
        pools.length(pools.version_pool(version.id)) == COVERED
    )  # the refused ones were never queued


def test_fifty_parallel_creates_through_the_service(
    user: Any, settings: Any, transactional_db: None
) -> None:
    version = _prepaid_for(user, settings)
    start = Barrier(N)

    def create(_: int) -> bool:
        start.wait()
        try:
            prediction_create(
                version=version, input={"text": "x"}, account=user.account, created_by=user
            )
            return True
        except PaymentRequired:
            return False
        finally:
            connection.close()  # each thread has its own PostgreSQL connection

    with ThreadPoolExecutor(N) as pool:
        results = list(pool.map(create, range(N)))
    _check(version, user, sum(results))


def test_fifty_parallel_api_requests_get_ten_201_and_forty_402(
    user: Any, settings: Any, start_web: Any
) -> None:
    version = _prepaid_for(user, settings)
    web = start_web(PREDICTION_TIMEOUT="100")
    key = token_for(user)
    start = Barrier(N)

    def post(_: int) -> httpx.Response:
        start.wait()
        return httpx.post(
            f"{web.url}/v1/predictions",
            json={"version": version.id, "input": {"text": "x"}},
            headers={"Authorization": f"Bearer {key}"},
            timeout=60,
        )

    with ThreadPoolExecutor(N) as pool:
        responses = list(pool.map(post, range(N)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [201] * COVERED + [402] * (N - COVERED)
    refused = next(r for r in responses if r.status_code == 402)
    assert refused.headers["content-type"] == "application/problem+json"
    assert "available credit is $0" in refused.json()["detail"]
    _check(version, user, codes.count(201))
