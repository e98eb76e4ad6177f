"""LOG_FORMAT=json: a real agent, web server and webhook worker write one JSON object per log
line, and every line that concerns a prediction carries its id."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from marketplace.logcontext import PredictionIdFilter, prediction_context
from tests.conftest import ServiceProcess, wait_for
from tests.factories import publish, token_for

pytestmark = pytest.mark.django_db(transaction=True)


def json_lines(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def ok_receiver() -> str:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/hook"


@pytest.mark.slow
def test_json_logs_carry_the_prediction_id(
    start_web: Any, start_agent: Any, start_worker: Any, user: Any
) -> None:
    publish(user, "image-filter")
    web = start_web(LOG_FORMAT="json")
    agent = start_agent(PUBLIC_URL=web.url, LOG_FORMAT="json")
    worker: ServiceProcess = start_worker("webhooks", LOG_FORMAT="json", PUBLIC_URL=web.url)
    auth = {"Authorization": f"Bearer {token_for(user)}"}
    uploaded = httpx.post(
        f"{web.url}/v1/files",
        headers=auth,
        files={"content": ("in.png", _png(), "image/png")},
    ).json()
    created = httpx.post(
        f"{web.url}/v1/predictions",
        headers={**auth, "Prefer": "wait"},
        json={
            "version": "alice/image-filter",
            "input": {"image": uploaded["urls"]["get"], "size": 20},
            "webhook": ok_receiver(),
            "webhook_events_filter": ["completed"],
        },
        timeout=120,
    ).json()
    pid = created["id"]

    def agent_done() -> list[dict[str, Any]]:
        lines = [r for r in json_lines(agent.log()) if r.get("prediction_id") == pid]
        return lines if any(r["message"] == "ended succeeded" for r in lines) else []

    mine = wait_for(agent_done, timeout=120, message="the agent to log the end")
    messages = [r["message"] for r in mine]
    assert any(m.startswith("running on instance") for m in messages)
    assert any(m.startswith("stored output file") for m in messages)
    assert all({"time", "level", "logger", "message"} <= set(r) for r in mine)
    # Lines about other work say so with a null id; no line mentioning it lacks the id.
    for record in json_lines(agent.log()):
        if pid in record["message"]:
            assert record["prediction_id"] == pid

    web_lines = [r for r in json_lines(web.log()) if r.get("prediction_id") == pid]
    assert any(r["message"].startswith("created for alice/image-filter") for r in web_lines)

    def delivered() -> list[dict[str, Any]]:
        return [
            r
            for r in json_lines(worker.log())
            if r.get("prediction_id") == pid and r["message"].startswith("webhook completed")
        ]

    [attempt] = wait_for(delivered, timeout=30, message="the worker's webhook log line")
    assert attempt["message"] == "webhook completed attempt 1: 204"


def test_the_plain_format_tags_lines_with_the_prediction() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    with prediction_context("p123"):
        PredictionIdFilter().filter(record)
    assert record.prediction_id == "p123" and record.prediction_tag == " prediction=p123"
    outside = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    PredictionIdFilter().filter(outside)
    assert outside.prediction_id is None and outside.prediction_tag == ""


def _png() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (30, 20), (10, 200, 10)).save(buffer, format="PNG")
    return buffer.getvalue()
