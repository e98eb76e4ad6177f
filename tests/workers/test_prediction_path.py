"""The life of a prediction on real parts: API → PostgreSQL → RQ queue in Redis → a real agent
process → a real Cog server → webhooks → events → terminal state."""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from rest_framework.test import APIClient

from marketplace.deployments.models import Instance
from marketplace.predictions import events
from marketplace.predictions.models import Prediction
from marketplace.scheduling import instances, pools
from tests.conftest import wait_for
from tests.factories import FIXTURES, publish
from workers.runtimes.base import HOST_MARKER

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def create(
    api: APIClient, version: str, input: dict[str, Any], wait: int | None = 60
) -> dict[str, Any]:
    headers = {"Prefer": f"wait={wait}"} if wait else {}
    response = api.post(
        "/v1/predictions", {"version": version, "input": input}, format="json", headers=headers
    )
    assert response.status_code == 201, response.content
    return response.json()


def finished(prediction_id: str, timeout: float = 60) -> Prediction:
    def done() -> Prediction | None:
        prediction = Prediction.objects.get(pk=prediction_id)
        return prediction if prediction.is_terminal else None

    return wait_for(done, timeout=timeout, message=f"prediction {prediction_id} to finish")


def cog_pids(host_name: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                environ = (proc / "environ").read_bytes().split(b"\0")
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if f"{HOST_MARKER}={host_name}".encode() in environ and b"cog.server.http" in cmdline:
                pids.append(int(proc.name))
    return pids


def png_data_uri(size: tuple[int, int] = (64, 48)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 40, 40)).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def test_hello_goes_starting_processing_succeeded(api, user, start_agent) -> None:  # type: ignore[no-untyped-def]
    version = publish(user, "hello")
    start_agent()
    body = create(api, version.pk, {"text": "there"})
    assert body["status"] == "succeeded", body
    assert body["output"] == "hello there"
    assert (
        body["metrics"]["predict_time"] > 0
        and body["metrics"]["total_time"] >= body["metrics"]["predict_time"]
    )
    assert body["started_at"] and body["completed_at"]
    stream = events.read(body["id"])
    assert stream[0].type == events.STATUS and stream[-1].type == events.DONE
    # The waiting request answered with the object the done event carried, which is the row's.
    assert stream[-1].data["prediction"] == body
    assert api.get(f"/v1/predictions/{body['id']}").json() == body
    assert events.read(body["id"])[0].data == {"status": "processing"}


def test_image_model_output_is_stored_and_served_back(api, user, start_agent) -> None:  # type: ignore[no-untyped-def]
    from workers.protocol import INLINE_AFTER

    version = publish(user, "image-filter")
    start_agent()
    # The first ones are followed with webhooks, the last goes inline: files arrive either way.
    for _ in range(INLINE_AFTER + 1):
        body = create(api, version.pk, {"image": png_data_uri(), "filter": "grayscale", "size": 32})
        assert body["status"] == "succeeded", body
        url = body["output"]
        assert url.startswith("http://127.0.0.1:8000/files/outputs/" + body["id"] + "/")
        response = APIClient().get(url.removeprefix("http://127.0.0.1:8000"))
        assert response.status_code == 200 and response["Content-Type"] == "image/png"
        image = Image.open(io.BytesIO(b"".join(response.streaming_content)))
        assert image.size == (32, 24) and image.mode == "L"


def test_streamed_chunks_arrive_before_the_prediction_finishes(api, user, start_agent) -> None:  # type: ignore[no-untyped-def]
    version = publish(user, "text-stream")
    start_agent()
    body = create(api, version.pk, {"max_tokens": 30, "seed": 7}, wait=None)
    chunks: list[str] = []
    status_at_first_chunk = None
    for event in events.follow(body["id"], timeout=60):
        if event.type == events.OUTPUT:
            if status_at_first_chunk is None:
                status_at_first_chunk = Prediction.objects.get(pk=body["id"]).status
            chunks.append(event.data["chunk"])
    assert status_at_first_chunk == Prediction.Status.PROCESSING
    prediction = finished(body["id"])
    assert prediction.status == Prediction.Status.SUCCEEDED
    assert prediction.output == chunks and len(chunks) == 30
    assert "".join(chunks).strip()


def test_slow_model_log_lines_arrive_while_it_runs(api, user, start_agent) -> None:  # type: ignore[no-untyped-def]
    version = publish(user, "slow-progress")
    start_agent()
    body = create(api, version.pk, {}, wait=None)
    lines: list[str] = []
    live_lines = 0
    for event in events.follow(body["id"], timeout=60):
        if event.type == events.LOGS:
            lines.extend(event.data["text"].splitlines())
            if Prediction.objects.get(pk=body["id"]).status == Prediction.Status.PROCESSING:
                live_lines = len(lines)
    prediction = finished(body["id"])
    assert prediction.status == Prediction.Status.SUCCEEDED
    assert prediction.output.startswith("Completed 6 steps")
    assert live_lines >= 3, lines
    assert any("6/6" in line for line in lines)
    assert "100%|" in prediction.logs
    assert prediction.metrics["predict_time"] >= 3


def test_input_types_model_gets_every_kind_of_input_and_never_sees_a_redacted_secret(
    api, user, start_agent
) -> None:  # type: ignore[no-untyped-def]
    version = publish(user, "input-types")
    start_agent()
    secret = "sk-live-abcdef"
    payload = {
        "count": 4,
        "temperature": 1.5,
        "shout": True,
        "color": "blue",
        "level": 3,
        "api_token": secret,
        "tags": ["x", "y"],
        "note": "hi",
        "name": "zed",
    }
    body = create(api, version.pk, payload)
    assert body["status"] == "succeeded", body
    result = json.loads(body["output"])
    assert result["count"] == 4 and result["color"] == "blue" and result["tags"] == ["x", "y"]
    assert result["api_token"].startswith(f"{len(secret)} chars, sha256 ")
    prediction = Prediction.objects.get(pk=body["id"])
    assert secret not in json.dumps(prediction.input) + prediction.logs + json.dumps(
        prediction.output
    )


def test_a_second_prediction_reuses_the_warm_instance(api, user, start_agent) -> None:  # type: ignore[no-untyped-def]
    version = publish(user, "hello")
    agent = start_agent()
    first = create(api, version.pk, {"text": "1"})
    pids_after_first = cog_pids(agent.host_name)
    second = create(api, version.pk, {"text": "2"})
    assert first["status"] == second["status"] == "succeeded"
    assert Instance.objects.filter(version=version).count() == 1
    ran_on = set(
        Prediction.objects.filter(pk__in=[first["id"], second["id"]]).values_list(
            "instance", flat=True
        )
    )
    assert len(ran_on) == 1
    assert len(pids_after_first) == 1 and cog_pids(agent.host_name) == pids_after_first


def test_the_instance_stops_after_the_idle_timeout(api, user, start_agent) -> None:  # type: ignore[no-untyped-def]
    version = publish(user, "hello")
    agent = start_agent(idle_timeout=1.0)
    assert create(api, version.pk, {})["status"] == "succeeded"
    instance = Instance.objects.get(version=version)
    wait_for(
        lambda: Instance.objects.get(pk=instance.pk).state == Instance.State.STOPPED, timeout=20
    )
    assert cog_pids(agent.host_name) == []
    assert instances.live_count(pools.version_pool(version.pk)) == 0
    assert "idle" in Instance.objects.get(pk=instance.pk).stop_reason
    # Scale back up from zero.
    assert create(api, version.pk, {"text": "again"})["output"] == "hello again"
    assert Instance.objects.filter(version=version).count() == 2


def test_killing_the_cog_process_fails_the_prediction_and_the_next_starts_fresh(
    api, user, start_agent
) -> None:  # type: ignore[no-untyped-def]
    version = publish(user, "slow-progress")
    agent = start_agent()
    body = create(api, version.pk, {"steps": 20}, wait=None)
    wait_for(
        lambda: any(e.type == events.LOGS for e in events.read(body["id"])),
        message="first log line",
    )
    instance = Instance.objects.get(version=version)
    os.kill(int(instance.runtime_ref), signal.SIGKILL)
    prediction = finished(body["id"], timeout=30)
    assert prediction.status == Prediction.Status.FAILED
    assert "stopped unexpectedly" in prediction.error and "exit code" in prediction.error
    # Failed before the prediction was failed, so already visible now.
    dead = Instance.objects.get(pk=instance.pk)
    assert dead.state == Instance.State.FAILED and "stopped unexpectedly" in dead.stop_reason
    wait_for(
        lambda: cog_pids(agent.host_name) == [],
        timeout=20,
        message="the crashed server to be cleaned up",
    )

    again = create(api, version.pk, {"steps": 1, "step_seconds": 0.1})
    assert again["status"] == "succeeded", again
    assert Prediction.objects.get(pk=again["id"]).instance_id != instance.pk


def test_canceling_a_running_prediction_stops_it(api, user, start_agent) -> None:  # type: ignore[no-untyped-def]
    version = publish(user, "slow-progress")
    start_agent()
    body = create(api, version.pk, {"steps": 40}, wait=None)
    wait_for(
        lambda: any(e.type == events.LOGS for e in events.read(body["id"])),
        message="first log line",
    )
    assert api.post(f"/v1/predictions/{body['id']}/cancel").status_code == 200
    prediction = finished(body["id"], timeout=30)
    assert prediction.status == Prediction.Status.CANCELED
    assert prediction.metrics["predict_time"] < 15
    assert events.read(body["id"])[-1].data["status"] == "canceled"


def test_a_model_whose_setup_fails_fails_its_predictions_with_the_setup_logs(
    api, user, start_agent
) -> None:  # type: ignore[no-untyped-def]
    version = publish(user, FIXTURES / "cog" / "failing_setup", name="failing")
    start_agent()
    body = create(api, version.pk, {})
    assert body["status"] == "failed"
    assert "setup failed" in body["error"] and "weights missing" in body["error"]
    # The runner records the instance's end before it fails the waiting predictions: no
    # waiting needed to see a failed instance once the prediction is seen failed.
    instance = Instance.objects.get(version=version)
    assert instance.state == Instance.State.FAILED and "weights missing" in instance.setup_logs
    assert "setup failed" in instance.stop_reason


def test_prefer_wait_returns_starting_when_the_window_closes_first(api, user, start_agent) -> None:  # type: ignore[no-untyped-def]
    version = publish(user, "slow-progress")
    start_agent()
    response = api.post(
        "/v1/predictions",
        {"version": version.pk, "input": {"steps": 4}},
        format="json",
        headers={"Prefer": "wait=1"},
    )
    assert response.status_code == 201
    assert response["Preference-Applied"] == "wait=1"
    assert response.json()["status"] == "starting"
    assert finished(response.json()["id"]).status == Prediction.Status.SUCCEEDED


def test_a_killed_agent_leaves_truthful_state_and_its_successor_cleans_up(
    api, user, start_agent
) -> None:  # type: ignore[no-untyped-def]
    version = publish(user, "slow-progress")
    agent = start_agent()
    body = create(api, version.pk, {"steps": 40}, wait=None)
    wait_for(
        lambda: any(e.type == events.LOGS for e in events.read(body["id"])),
        message="first log line",
    )
    agent.kill()
    # The kernel takes the Cog server down with the agent (pdeathsig).
    wait_for(
        lambda: cog_pids(agent.host_name) == [], timeout=20, message="the orphaned server to die"
    )
    successor = start_agent(host_name=agent.host_name)
    prediction = finished(body["id"], timeout=30)
    assert prediction.status == Prediction.Status.FAILED
    assert "agent restarted" in prediction.error
    # The successor marks the old instances stopped before it fails their predictions.
    old = Instance.objects.get(pk=prediction.instance_id)
    assert old.state == Instance.State.FAILED and old.stop_reason == "agent restarted"
    assert old.stop_cause == "agent_restarted"
    assert not Instance.objects.filter(
        host__name=successor.host_name, state__in=Instance.LIVE, pk__lte=old.pk
    ).exists()
    assert create(api, version.pk, {"steps": 1, "step_seconds": 0.1})["status"] == "succeeded"


def test_a_concurrent_model_runs_its_slots_in_parallel_on_one_instance(
    api, user, start_agent
) -> None:  # type: ignore[no-untyped-def]
    version = publish(user, FIXTURES / "cog" / "sleepy_concurrent", name="sleepy")
    assert version.concurrency == 4
    agent = start_agent()
    create(api, version.pk, {"seconds": 0.01})  # boot the instance first
    ids = [create(api, version.pk, {"seconds": 1.0}, wait=None)["id"] for _ in range(4)]
    predictions = [finished(pid) for pid in ids]
    assert {p.output for p in predictions} == {"slept 1.0"}
    # All four ran at the same time: each started before any of them completed.
    assert max(p.started_at for p in predictions) < min(p.completed_at for p in predictions)
    assert Instance.objects.filter(version=version).count() == 1
    assert Instance.objects.get(version=version).slots == 4
    assert len(cog_pids(agent.host_name)) == 1


def test_a_prediction_that_runs_past_the_timeout_fails_saying_so(api, user, start_agent) -> None:  # type: ignore[no-untyped-def]
    version = publish(user, "slow-progress")
    start_agent(PREDICTION_TIMEOUT="2")
    body = create(api, version.pk, {"steps": 40}, wait=None)
    prediction = finished(body["id"], timeout=30)
    assert prediction.status == Prediction.Status.FAILED
    assert prediction.error == "Prediction exceeded the timeout of 2 s"
    assert 2 <= prediction.metrics["predict_time"] < 10


def _quick_runs(api: APIClient, version: str) -> None:
    """Enough quick predictions for the instance to send the next ones inline."""
    from workers.protocol import INLINE_AFTER

    for _ in range(INLINE_AFTER + 1):
        quick = create(api, version, {"steps": 1, "step_seconds": 0.01})
        assert quick["status"] == "succeeded", quick
        assert "1/1" in quick["logs"]
    # The last one went inline: its logs came with its end, for the stream's followers too.
    assert any(e.type == events.LOGS and "1/1" in e.data["text"] for e in events.read(quick["id"]))


def test_an_inline_prediction_is_canceled_and_the_next_long_one_is_followed_live(
    api, user, start_agent
) -> None:  # type: ignore[no-untyped-def]
    version = publish(user, "slow-progress")
    start_agent()
    _quick_runs(api, version.pk)
    # Inline: no webhook, so nothing live while it runs; a cancel still reaches it.
    inline = create(api, version.pk, {"steps": 40, "step_seconds": 0.1}, wait=None)
    wait_for(
        lambda: Prediction.objects.get(pk=inline["id"]).status == "processing",
        message="the inline prediction to start",
    )
    time.sleep(1)  # ten steps: a followed prediction would have streamed log lines by now
    assert not any(e.type == events.LOGS for e in events.read(inline["id"]))
    assert api.post(f"/v1/predictions/{inline['id']}/cancel").status_code == 200
    prediction = finished(inline["id"], timeout=30)
    assert prediction.status == Prediction.Status.CANCELED
    assert prediction.metrics["predict_time"] < 3.5  # 4 s had it not been stopped
    # coglet answers a canceled inline prediction without its logs (a followed one would have
    # had them live).
    assert prediction.logs == ""
    # That one was slow: the next is followed again, and its log lines arrive while it runs.
    followed = create(api, version.pk, {"steps": 40, "step_seconds": 0.1}, wait=None)
    wait_for(
        lambda: any(e.type == events.LOGS for e in events.read(followed["id"])),
        message="a log line while it runs",
    )
    assert Prediction.objects.get(pk=followed["id"]).status == "processing"
    assert api.post(f"/v1/predictions/{followed['id']}/cancel").status_code == 200
    assert finished(followed["id"], timeout=30).status == Prediction.Status.CANCELED


def test_an_inline_prediction_that_runs_past_the_timeout_fails_saying_so(
    api, user, start_agent
) -> None:  # type: ignore[no-untyped-def]
    version = publish(user, "slow-progress")
    start_agent(PREDICTION_TIMEOUT="2")
    _quick_runs(api, version.pk)
    body = create(api, version.pk, {"steps": 40}, wait=None)
    prediction = finished(body["id"], timeout=30)
    assert prediction.status == Prediction.Status.FAILED
    assert prediction.error == "Prediction exceeded the timeout of 2 s"
    assert 2 <= prediction.metrics["predict_time"] < 10
