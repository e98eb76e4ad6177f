"""Who paid: a prediction a member runs through an organisation-scoped token is billed to the
organisation (its ledger names the member); the member's own credit is untouched. A real agent
runs a real Cog server behind a real web server."""

from __future__ import annotations

from csv import DictReader
from decimal import Decimal
from typing import Any

import httpx
import pytest

from marketplace.billing import services
from marketplace.billing.models import BillingAccount, UsageEntry
from marketplace.catalog.models import Hardware
from marketplace.predictions.models import Prediction
from tests.conftest import wait_for
from tests.orgs.conftest import World

pytestmark = pytest.mark.slow


def _prepaid(account: Any, credit: str) -> BillingAccount:
    billing = services.billing_for(account)
    BillingAccount.objects.filter(pk=billing.pk).update(mode=BillingAccount.Mode.PREPAID)
    services.credits_grant(account, Decimal(credit), source="staff", reference=f"orgs-{account}")
    return billing


@pytest.mark.django_db(transaction=True)
def test_a_members_prediction_through_an_org_token_is_billed_to_the_org(
    world: World, start_web: Any, start_agent: Any
) -> None:
    Hardware.objects.filter(sku="cpu").update(price_per_second=Decimal("0.01"))
    org_billing = _prepaid(world.org, "25")
    mia = world.users["member"]
    own_billing = _prepaid(mia.account, "5")
    web = start_web()
    start_agent()
    response = httpx.post(
        f"{web.url}/v1/predictions",
        headers={"Authorization": f"Bearer {world.keys['member']}", "Prefer": "wait"},
        json={"version": "acme/secret", "input": {"text": "team"}},
        timeout=70,
    )
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "succeeded", response.text

    prediction = Prediction.objects.get(pk=response.json()["id"])
    assert prediction.account == world.org and prediction.created_by == mia
    entry = UsageEntry.objects.get(prediction=prediction)
    assert entry.billing_id == org_billing.pk
    assert entry.user == mia and entry.token is not None and entry.token.account == world.org
    assert entry.amount > 0 and entry.amount == prediction.cost == entry.credit_applied
    # world.prediction and world.training (also mia's, for acme) were queued when the world
    # committed and run too; the ledger is read once both have ended (each is charged in the
    # transaction that ends it), or a charge landing after the read makes the sums disagree.
    others = Prediction.objects.filter(pk__in=[world.prediction.pk, world.training.pk])
    wait_for(
        lambda: all(p.status in Prediction.TERMINAL for p in others.all()),
        timeout=90,
        message="the world's prediction and training to end",
    )
    org_entries = UsageEntry.objects.filter(billing=org_billing)
    assert {e.user_id for e in org_entries} == {mia.pk}
    spent = sum((e.credit_applied for e in org_entries), Decimal(0))
    assert spent >= entry.amount
    org_billing.refresh_from_db()
    own_billing.refresh_from_db()
    assert org_billing.credit_balance == Decimal(25) - spent
    assert own_billing.credit_balance == Decimal(5)
    assert not UsageEntry.objects.filter(billing=own_billing).exists()

    # The org's owner sees it in the org's balance and on its billing page, with who ran it.
    owner_headers = {"Authorization": f"Bearer {world.keys['owner']}"}
    balance = httpx.get(f"{web.url}/v1/billing", headers=owner_headers).json()
    # Month spend is what the entries cost, paid from credit or not (world.prediction may have
    # ended before the credit was granted).
    assert Decimal(balance["month_spend"]) == sum((e.amount for e in org_entries), Decimal(0))
    member_headers = {"Authorization": f"Bearer {world.keys['member']}"}
    assert httpx.get(f"{web.url}/v1/billing", headers=member_headers).status_code == 403
    page = world.site("owner").get("/billing/?account=acme").content.decode()
    row = page.split(f"<code>{prediction.pk}</code>")[1].split("</tr>")[0]
    assert "<td>mia</td>" in row
    csv = b"".join(world.site("owner").get("/billing/usage.csv?account=acme").streaming_content)
    rows = list(DictReader(csv.decode().splitlines()))
    assert rows and all(row["user"] == "mia" for row in rows)
    assert prediction.pk in [row["prediction"] for row in rows]
