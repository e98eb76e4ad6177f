"""Webhook deliveries in the Django admin: read-only records, redelivered by a real worker."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from marketplace.predictions import webhooks
from marketplace.predictions.services import prediction_claim
from marketplace.predictions.webhooks import WebhookDelivery
from tests.api.test_webhooks import Receiver, create
from tests.conftest import wait_for
from tests.factories import UserFactory, publish

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = "/admin/predictions/webhookdelivery/"


@pytest.fixture
def hook() -> Iterator[Receiver]:
    """A loopback receiver answering 500 once, then 200."""
    receiver = Receiver([500])
    yield receiver
    receiver.close()


def staff_client(**perms: bool) -> Client:
    operator = UserFactory(username="operator", is_staff=True, **perms)
    client = Client()
    client.force_login(operator)
    return client


def failed_delivery(api: Any, user: Any, hook: Receiver) -> WebhookDelivery:
    prediction = create(api, publish(user, "hello"), hook.url, ["start"])
    prediction_claim(prediction.id, None)  # type: ignore[arg-type]
    delivery = WebhookDelivery.objects.get(prediction=prediction)
    webhooks.deliver(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.FAILED
    return delivery


def test_staff_redeliver_from_the_admin_and_a_worker_sends_it_again(
    api: Any, user: Any, hook: Receiver, start_worker: Any
) -> None:
    delivery = failed_delivery(api, user, hook)
    admin = staff_client(is_superuser=True)

    page = admin.get(f"{CHANGELIST}{delivery.pk}/change/")
    assert page.status_code == 200
    body = page.content.decode()
    assert delivery.message_id in body and "500" in body  # the attempt, inline
    assert 'name="_save"' not in body  # read-only: nothing to save

    start_worker("webhooks")
    response = admin.post(
        CHANGELIST,
        {"action": "redeliver_selected", "_selected_action": [str(delivery.pk)]},
        follow=True,
    )
    assert response.status_code == 200
    assert "1 webhook delivery queued again." in response.content.decode()

    wait_for(
        lambda: WebhookDelivery.objects.get(pk=delivery.pk).status == "delivered",
        timeout=30,
        message="the worker to redeliver",
    )
    delivery.refresh_from_db()
    assert [a.response_status for a in delivery.attempts.all()] == [500, 200]
    # Both attempts carried the same webhook-id, so the receiver can deduplicate.
    assert [r[1]["webhook-id"] for r in hook.requests] == [delivery.message_id] * 2


def test_view_only_staff_cannot_redeliver_or_edit(api: Any, user: Any, hook: Receiver) -> None:
    delivery = failed_delivery(api, user, hook)
    viewer = UserFactory(username="viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_webhookdelivery"))
    client = Client()
    client.force_login(viewer)
    assert client.get(CHANGELIST).status_code == 200
    response = client.post(
        CHANGELIST, {"action": "redeliver_selected", "_selected_action": [str(delivery.pk)]}
    )
    # The action is not offered to them: Django refuses an unknown action, nothing is queued.
    assert response.status_code in (200, 302)
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.FAILED
    assert client.post(f"{CHANGELIST}{delivery.pk}/delete/").status_code == 403
    assert client.get(f"{CHANGELIST}add/").status_code == 403
