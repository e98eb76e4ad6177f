"""Jobs on the hardware queues (``hw:<sku>``), consumed by host agents with free capacity."""

from __future__ import annotations

from workers.agent import current_agent


def start_instance(pool: str, version_id: str, sku: str, request_id: str) -> None:
    agent = current_agent.get()
    if agent is None:
        raise RuntimeError("start_instance runs inside `manage.py agent`, not in a plain RQ worker")
    agent.start_instance(pool, version_id, sku, request_id)
