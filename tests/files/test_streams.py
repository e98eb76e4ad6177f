"""The live streams sign only what the prediction wrote: ``/v1/streams`` (live and replayed from
the database) and the prediction page's own event stream, on the live ASGI server."""

from __future__ import annotations

import io
from typing import Any

import httpx
import pytest
from django.test import Client

from marketplace.predictions import events
from marketplace.predictions.models import Prediction
from marketplace.predictions.services import Outcome, prediction_claim, prediction_finish
from marketplace.redisconn import get_redis
from tests.factories import UserFactory, publish
from tests.files.helpers import owner_of, signed_urls_in
from workers.outputs import store_output_stream

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def written(prediction: Prediction, text: str) -> str:
    data = text.encode()
    return store_output_stream(prediction.pk, "o.txt", io.BytesIO(data), len(data), "text/plain")


def test_streams_sign_the_predictions_own_outputs_only(user: Any, start_web: Any) -> None:
    web = start_web()
    version = publish(user, "text-stream")
    bob = UserFactory(username="bob")

    def running(account: Any) -> Prediction:
        prediction = Prediction.objects.create(
            model=version.model,
            version=version,
            account=account,
            hardware=version.model.default_hardware,
        )
        prediction_claim(prediction.id, instance_id=None)  # type: ignore[arg-type]
        return prediction

    bobs = running(bob.account)
    foreign = written(bobs, "bob's")
    mine = running(user.account)
    own = written(mine, "mine")
    # A model that echoes a reference it saw somewhere: the stream must not sign it.
    events.publish(mine.pk, events.OUTPUT, {"index": 0, "chunk": own})
    events.publish(mine.pk, events.OUTPUT, {"index": 1, "chunk": foreign})
    prediction_finish(mine.pk, Outcome("succeeded", output=[own, foreign]))

    def check(text: str) -> None:
        signed = signed_urls_in(text)
        assert signed and all(owner_of(url) == user.account.pk for url in signed), signed
        assert foreign in text  # passed on as the plain, unsigned string it is

    url = f"{web.url}/v1/streams/{mine.stream_token}"
    live = httpx.get(url, headers={"Accept": "text/event-stream"}, timeout=10).text
    check(live)
    page = Client()
    page.force_login(user)
    site = httpx.get(
        f"{web.url}/p/{mine.pk}/events",
        cookies={"sessionid": page.cookies["sessionid"].value},
        timeout=10,
    ).text
    check(site)
    # Once the event stream has expired, the replay comes from the database: the same rule.
    get_redis().delete(events.stream_key(mine.pk))
    replayed = httpx.get(url, headers={"Accept": "text/event-stream"}, timeout=10).text
    check(replayed)
