"""The whole stack as real processes: uvicorn, an agent running Cog, the test as a client."""

from __future__ import annotations

from typing import Any

import httpx

from tests.factories import publish, token_for


def test_prediction_through_the_live_web_server(
    start_web: Any, start_agent: Any, user: Any
) -> None:
    version = publish(user, "hello", "hello")
    web = start_web()
    start_agent()
    response = httpx.post(
        f"{web.url}/v1/predictions",
        headers={"Authorization": f"Bearer {token_for(user)}", "Prefer": "wait"},
        json={"version": version.id, "input": {"text": "live"}},
        timeout=70,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "succeeded", body
    assert body["urls"]["get"].startswith(web.url)
    assert "live" in str(body["output"])
