"""The agent's endpoint for Cog callbacks, over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from django.core.files.storage import default_storage

from marketplace.files.models import StoredFile
from marketplace.predictions.services import prediction_create
from tests.factories import publish
from workers.hookserver import HookServer


@pytest.fixture
def server() -> Iterator[HookServer]:
    hooks = HookServer("127.0.0.1", 0)
    hooks.start()
    yield hooks
    hooks.stop()


def test_webhooks_reach_the_waiting_prediction_only_with_its_token(server: HookServer) -> None:
    mailbox = server.expect("p1", "instance-token")
    base = f"http://127.0.0.1:{server.port}"
    wrong = httpx.post(
        f"{base}/hooks/p1", json={"status": "processing"}, headers={"Authorization": "Bearer nope"}
    )
    assert wrong.status_code == 403
    assert mailbox.queue.empty()
    ok = httpx.post(
        f"{base}/hooks/p1",
        json={"status": "succeeded"},
        headers={"Authorization": "Bearer instance-token"},
    )
    assert ok.status_code == 200
    assert mailbox.queue.get_nowait() == {"status": "succeeded"}


def test_late_webhooks_for_finished_predictions_are_accepted_and_dropped(
    server: HookServer,
) -> None:
    response = httpx.post(
        f"http://127.0.0.1:{server.port}/hooks/gone", json={"status": "processing"}
    )
    assert response.status_code == 200


@pytest.mark.django_db(transaction=True)  # the server's thread reads the prediction
def test_uploads_are_stored_and_answered_with_their_public_url(
    server: HookServer, settings, user
) -> None:  # type: ignore[no-untyped-def]
    prediction = prediction_create(
        version=publish(user, "hello"), input={}, account=user.account, created_by=user
    )
    server.add_token("tok")
    server.expect(prediction.pk, "tok")
    response = httpx.put(
        f"http://127.0.0.1:{server.port}/upload/tok/out-0.txt",
        content=b"hello file",
        headers={"X-Prediction-ID": prediction.pk, "Content-Type": "text/plain"},
    )
    assert response.status_code == 201
    url = response.headers["Location"]
    assert url.startswith(f"{settings.PUBLIC_URL}/files/outputs/{prediction.pk}/")
    assert url.endswith("/out-0.txt")
    name = url.split("/files/", 1)[1]
    with default_storage.open(name) as stored:
        assert stored.read() == b"hello file"
    # Owned by the prediction that wrote it, and so by its account.
    row = StoredFile.objects.get(name=name)
    assert row.prediction_id == prediction.pk and row.account_id == user.account.pk


def test_uploads_need_a_known_token_and_a_prediction_of_that_instance(server: HookServer) -> None:
    server.add_token("tok")
    server.add_token("other")
    server.expect("p3", "other")
    base = f"http://127.0.0.1:{server.port}"
    assert (
        httpx.put(
            f"{base}/upload/unknown/x.txt", content=b"x", headers={"X-Prediction-ID": "p3"}
        ).status_code
        == 404
    )
    assert (
        httpx.put(
            f"{base}/upload/tok/x.txt", content=b"x", headers={"X-Prediction-ID": "p3"}
        ).status_code
        == 403
    )


def test_oversized_and_unsized_uploads_are_refused(server: HookServer, settings) -> None:  # type: ignore[no-untyped-def]
    settings.MAX_OUTPUT_FILE_BYTES = 4
    server.add_token("tok")
    server.expect("p4", "tok")
    base = f"http://127.0.0.1:{server.port}"
    big = httpx.put(f"{base}/upload/tok/x.bin", content=b"12345", headers={"X-Prediction-ID": "p4"})
    assert big.status_code == 413

    def chunks() -> Iterator[bytes]:
        yield b"12"

    unsized = httpx.put(
        f"{base}/upload/tok/x.bin", content=chunks(), headers={"X-Prediction-ID": "p4"}
    )
    assert unsized.status_code == 411
