"""Jobs on the hardware queues (``hw:<sku>``), consumed by host agents with free capacity."""

from __future__ import annotations

from workers.agent import current_agent


def start_instance(version_id: str, sku: str) -> None:
    agent = current_agent.get()
    if agent is None:
        raise RuntimeError("start_instance runs inside `manage.py agent`, not in a plain RQ worker")
    agent.start_instance(version_id, sku)
