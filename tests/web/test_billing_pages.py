"""Where the site meets billing and webhooks: owners' prices, quotes before running, payment
refusals, and the webhook delivery log on a prediction's page."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from rq import Queue

from marketplace.billing import services
from marketplace.billing.models import BillingAccount, Reservation, UsageEntry
from marketplace.catalog.models import Version
from marketplace.predictions.models import Prediction
from marketplace.predictions.services import prediction_create
from marketplace.predictions.webhooks import QUEUE, WebhookDelivery, deliver, notify
from marketplace.redisconn import get_redis
from tests.conftest import free_port
from tests.factories import publish

pytestmark = pytest.mark.django_db


@pytest.fixture
def hello(user: Any, settings: Any) -> Version:
    settings.PREDICTION_TIMEOUT = 1800
    return publish(user, "hello", "hello")


def price_url(version: Version) -> str:
    return f"/alice/hello/versions/{version.pk}/price"


# 1. Owners set a version's price


def test_owner_sets_and_clears_a_flat_price_on_the_versions_tab(
    alice_client: Client, hello: Version
) -> None:
    html = alice_client.get("/alice/hello/versions").content.decode()
    assert "$0.0001 per second on CPU" in html
    assert f'action="{price_url(hello)}"' in html and "csrfmiddlewaretoken" in html

    response = alice_client.post(
        price_url(hello), {"unit_price": "0.0125", "price_unit": "output_item"}
    )
    assert response.status_code == 302
    assert response["Location"] == f"/alice/hello/versions#v-{hello.pk[:12]}"
    hello.refresh_from_db()
    assert hello.unit_price == Decimal("0.0125")
    assert hello.price_unit == Version.PriceUnit.OUTPUT_ITEM
    html = alice_client.get("/alice/hello/versions").content.decode()
    assert "$0.0125 per output" in html
    assert 'value="0.012500"' in html  # the form shows the current price

    response = alice_client.post(price_url(hello), {"unit_price": "", "price_unit": "prediction"})
    assert response.status_code == 302
    hello.refresh_from_db()
    assert hello.unit_price is None  # back to hardware time
    assert hello.price_unit == Version.PriceUnit.PREDICTION


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"unit_price": "-1", "price_unit": "prediction"}, "greater than or equal to 0"),
        ({"unit_price": "5000", "price_unit": "prediction"}, "less than or equal to 1000"),
        ({"unit_price": "0.0000001", "price_unit": "prediction"}, "6 decimal places"),
        ({"unit_price": "lots", "price_unit": "prediction"}, "Enter a number"),
        ({"unit_price": "NaN", "price_unit": "prediction"}, "Enter a number"),
        ({"unit_price": "0.01", "price_unit": "per_hour"}, "Select a valid choice"),
    ],
)
def test_bad_price_rerenders_with_the_field_named_and_changes_nothing(
    alice_client: Client, hello: Version, data: dict[str, str], message: str
) -> None:
    Version.objects.filter(pk=hello.pk).update(unit_price=Decimal("0.02"))
    response = alice_client.post(price_url(hello), data)
    assert response.status_code == 422
    html = response.content.decode()
    assert "The price was not changed" in html
    label = "Per" if data["price_unit"] == "per_hour" else "Price (USD)"
    assert f'role="alert">{label}: ' in html and message in html
    hello.refresh_from_db()
    assert hello.unit_price == Decimal("0.02") and hello.price_unit == "prediction"


def test_outsiders_cannot_set_prices(
    mallory_client: Client, client: Client, hello: Version
) -> None:
    html = mallory_client.get("/alice/hello/versions").content.decode()
    assert "Set price" not in html and "$0.0001 per second on CPU" in html
    data = {"unit_price": "0", "price_unit": "prediction"}
    assert mallory_client.post(price_url(hello), data).status_code == 404
    assert client.post(price_url(hello), data).status_code == 302  # to the login page
    hello.refresh_from_db()
    assert hello.unit_price is None


def test_unknown_or_hidden_version_is_404(alice_client: Client, hello: Version) -> None:
    data = {"unit_price": "1", "price_unit": "prediction"}
    assert alice_client.post("/alice/hello/versions/abc/price", data).status_code == 404
    Version.objects.filter(pk=hello.pk).update(hidden=True)
    assert alice_client.post(price_url(hello), data).status_code == 404


# 2. Quote before running


def test_playground_and_api_tab_quote_hardware_time(alice_client: Client, hello: Version) -> None:
    html = alice_client.get("/alice/hello").content.decode()
    # CPU at $0.0001 per second, a run stops after 1800 s.
    assert "Cost: $0.0001 per second on CPU · at most $0.18 per run" in html
    api = alice_client.get("/alice/hello/api").content.decode()
    assert f"/v1/billing/quote?version=alice/hello:{hello.pk}" in api
    assert "$0.0001 per second on CPU · at most $0.18 per run" in api


def test_playground_quotes_a_flat_price(client: Client, hello: Version, settings: Any) -> None:
    settings.BILLING_MAX_OUTPUT_ITEMS = 10
    Version.objects.filter(pk=hello.pk).update(unit_price=Decimal("0.01"))
    assert "Cost: $0.01 per prediction</p>" in client.get("/alice/hello").content.decode()
    Version.objects.filter(pk=hello.pk).update(price_unit="output_item")
    html = client.get("/alice/hello").content.decode()
    assert "Cost: $0.01 per output · at most $0.10 per run" in html


# 4. Payment refusals


def test_prepaid_account_without_credit_is_refused_with_a_link_to_billing(
    alice_client: Client, user: Any, hello: Version
) -> None:
    billing = services.billing_for(user.account)
    billing.mode = BillingAccount.Mode.PREPAID
    billing.save(update_fields=["mode"])
    response = alice_client.post("/alice/hello/run", {"version": hello.pk, "text": "hi"})
    assert response.status_code == 422
    html = response.content.decode()
    assert "could cost up to $0.180000 but your available credit is $0" in html
    assert '<a href="/billing/">Go to billing</a>' in html
    assert ">hi</textarea>" in html  # what was typed is kept
    assert not Prediction.objects.exists()
    assert not Reservation.objects.exists() and not UsageEntry.objects.exists()

    # With credit, the same form runs.
    services.credits_grant(user.account, Decimal("1"), source="staff", reference="test")
    response = alice_client.post("/alice/hello/run", {"version": hello.pk, "text": "hi"})
    assert response.status_code == 302
    assert Prediction.objects.count() == 1


# 3. The webhook delivery log


def failed_delivery(user: Any, version: Version) -> tuple[Prediction, WebhookDelivery]:
    """A real start webhook, really attempted against a closed loopback port."""
    prediction = prediction_create(
        version=version, input={"text": "x"}, account=user.account, created_by=user
    )
    Prediction.objects.filter(pk=prediction.pk).update(
        webhook=f"http://127.0.0.1:{free_port()}/hook", webhook_events_filter=["start"]
    )
    delivery = notify(prediction.pk, "start")
    assert delivery is not None
    attempt = deliver(delivery.pk)
    assert attempt is not None and attempt.error
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.FAILED  # start webhooks are not retried
    return prediction, delivery


def test_prediction_page_lists_deliveries_and_redelivers_a_failed_one(
    alice_client: Client, user: Any, hello: Version
) -> None:
    prediction, delivery = failed_delivery(user, hello)
    html = alice_client.get(f"/p/{prediction.pk}").content.decode()
    assert 'id="webhooks"' in html and delivery.message_id in html
    assert "status-failed" in html and delivery.attempts.get().error[:20] in html
    redeliver_url = f"/p/{prediction.pk}/webhooks/{delivery.message_id}/redeliver"
    assert f'action="{redeliver_url}"' in html

    queue = Queue(QUEUE, connection=get_redis())
    queue.empty()
    response = alice_client.post(redeliver_url)
    assert response.status_code == 302 and response["Location"].endswith("#webhooks")
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.PENDING
    assert [job.args for job in queue.get_jobs()] == [(delivery.pk,)]
    # Pending: no button, and posting again queues nothing more.
    html = alice_client.get(f"/p/{prediction.pk}").content.decode()
    assert f'action="{redeliver_url}"' not in html
    alice_client.post(redeliver_url)
    assert queue.count == 1

    # The worker's attempt (run here) fails again and is logged as a second attempt.
    deliver(delivery.pk)
    html = alice_client.get(f"/p/{prediction.pk}").content.decode()
    assert html.count("</time></td><td>") == 2


def test_outsiders_see_no_deliveries_and_cannot_redeliver(
    mallory_client: Client, alice_client: Client, user: Any, hello: Version
) -> None:
    prediction, delivery = failed_delivery(user, hello)
    Prediction.objects.filter(pk=prediction.pk).update(is_example=True)  # visible to all
    html = mallory_client.get(f"/p/{prediction.pk}").content.decode()
    assert delivery.message_id not in html and "/hook" not in html
    assert "/hook" not in mallory_client.get(f"/p/{prediction.pk}/json").content.decode()
    assert "/hook" in alice_client.get(f"/p/{prediction.pk}/json").content.decode()
    url = f"/p/{prediction.pk}/webhooks/{delivery.message_id}/redeliver"
    assert mallory_client.post(url).status_code == 404
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.FAILED
    assert alice_client.post(f"/p/{prediction.pk}/webhooks/msg_nope/redeliver").status_code == 404
