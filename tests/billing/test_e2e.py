"""A real prediction on a real Cog server (run by a real agent) lands on the ledger."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import httpx
import pytest

from marketplace.billing import services
from marketplace.billing.models import BillingAccount, Reservation, UsageEntry
from marketplace.predictions.models import Prediction
from tests.billing.conftest import priced
from tests.factories import token_for

pytestmark = pytest.mark.slow


def test_real_prediction_writes_a_ledger_entry_and_its_cost(
    user: Any, start_web: Any, start_agent: Any
) -> None:
    version = priced(user, per_second="0.0115")
    billing = services.billing_for(user.account)
    BillingAccount.objects.filter(pk=billing.pk).update(mode=BillingAccount.Mode.PREPAID)
    services.credits_grant(user.account, Decimal(25), source="staff", reference="e2e")
    web = start_web()
    start_agent()
    headers = {"Authorization": f"Bearer {token_for(user)}", "Prefer": "wait"}
    quote = httpx.get(
        f"{web.url}/v1/billing/quote", params={"version": "alice/hello"}, headers=headers
    ).json()
    assert quote["max_cost"] == "20.700000"  # 1800 s x $0.0115

    response = httpx.post(
        f"{web.url}/v1/predictions",
        headers=headers,
        json={"version": version.id, "input": {"text": "ledger"}},
        timeout=70,
    )
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "succeeded", response.text

    prediction = Prediction.objects.get(pk=response.json()["id"])
    entry = UsageEntry.objects.get(prediction=prediction)
    predict_time = Decimal(str(prediction.metrics["predict_time"]))
    seconds = predict_time.quantize(Decimal("0.001"), rounding=ROUND_HALF_UP)
    assert entry.seconds == seconds and entry.seconds > 0
    amount = (seconds * Decimal("0.0115")).quantize(Decimal("0.000001"), ROUND_HALF_UP)
    assert entry.amount == amount == prediction.cost
    assert entry.credit_applied == amount
    assert not Reservation.objects.filter(prediction=prediction).exists()
    billing.refresh_from_db()
    assert billing.credit_balance == Decimal(25) - amount
    balance = httpx.get(f"{web.url}/v1/billing", headers=headers).json()
    assert Decimal(balance["month_spend"]) == amount
