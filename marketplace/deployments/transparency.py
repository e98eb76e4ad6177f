"""Queue transparency: where a waiting prediction stands, and how long a model's runs take.

``queue_info`` is the ``queue`` extension of the prediction object (API, SSE, the prediction
page): ``position`` (1-based, in serving order: accounts take turns), ``estimated_start_at``
(from the pool's recent run and setup times; null until there are some) and ``phase``:

- ``queued``: instances serve the pool, all slots are busy (or it is next);
- ``starting_instance``: no instance serves it yet, one was asked for or is booting;
- ``waiting_for_capacity``: an instance was asked for, but no host that has its hardware has
  room: each is full of instances it may not evict (busy ones, ones a deployment keeps, ones too
  recently started), or none is attached; it starts as soon as one has room;
- ``setup``: an instance's Cog server is up and running the model's ``setup()``;
- ``running``: it was claimed (status ``processing``).

``timing_summary`` gives the model page p50/p95 of queue, setup and run times over the last day.
"""

from __future__ import annotations

import math
import statistics
from datetime import timedelta
from typing import Any

from django.utils import timezone

from marketplace.catalog.models import Model
from marketplace.deployments.models import Instance
from marketplace.isotime import iso
from marketplace.predictions.models import Prediction
from marketplace.scheduling import instances, placement, pools, starts

QUEUED = "queued"
STARTING_INSTANCE = "starting_instance"
WAITING_FOR_CAPACITY = "waiting_for_capacity"
SETUP = "setup"
RUNNING = "running"
# Samples read for a model page's percentiles (the most recent ones of the last day).
TIMING_SAMPLE = 5000


def queue_info(prediction: Prediction) -> dict[str, Any] | None:
    """The ``queue`` extension of an active prediction; None once it has ended."""
    if prediction.status == Prediction.Status.PROCESSING:
        return {"position": None, "estimated_start_at": None, "phase": RUNNING}
    if prediction.status != Prediction.Status.STARTING:
        return None
    enqueued: starts.Enqueued | None = getattr(prediction, "enqueued", None)
    if enqueued is not None:
        # Just created: the queueing script said where it stands.
        position: int | None = enqueued.position
        state = enqueued.state
        room: int | None = enqueued.room
    else:
        pool = pools.pool_of_prediction(prediction)
        position = pools.position(pool, prediction.pk)
        state = instances.states([pool])[pool]
        room = None
    slots = max(1, prediction.version.concurrency)
    run = statistics.median(state.runs) if state.runs else None
    setup = statistics.median(state.setups) if state.setups else None
    wait: float | None
    ahead = (position or 1) - 1
    if state.live:
        phase = QUEUED
        capacity = len(state.live) * slots
        free = max(0, capacity - state.in_flight)
        wait = (
            0.0
            if ahead < free
            else (None if run is None else math.ceil((ahead + 1 - free) / capacity) * run)
        )
    else:
        phase = SETUP if state.setup else STARTING_INSTANCE if state.starting else QUEUED
        capacity = max(1, state.starting) * slots
        wait = None if setup is None or run is None else setup + (ahead // capacity) * run
        # Asked for and not taken yet: can any host take it?
        waiting = phase == STARTING_INSTANCE and not (state.booting or state.setup)
        if waiting:
            if room is None:
                room = placement.room_for(prediction.hardware.sku)
            if room <= 0:
                phase, wait = WAITING_FOR_CAPACITY, None
    estimate = None if wait is None else iso(timezone.now() + timedelta(seconds=wait))
    return {"position": position, "estimated_start_at": estimate, "phase": phase}


PHASE_LABELS = {
    QUEUED: "waiting for a free slot",
    STARTING_INSTANCE: "starting an instance",
    WAITING_FOR_CAPACITY: "waiting for a host with room (the hosts for its hardware are full)",
    SETUP: "the model is setting up",
    RUNNING: "running",
}


def describe(info: dict[str, Any] | None) -> str:
    """One line for people: "position 3 in the queue · starting an instance"."""
    if not info or info.get("phase") == RUNNING:
        return ""
    parts = [f"position {info['position']} in the queue"] if info.get("position") else []
    parts.append(PHASE_LABELS.get(str(info.get("phase")), ""))
    return " · ".join(p for p in parts if p)


def with_queue(body: dict[str, Any], prediction: Prediction) -> dict[str, Any]:
    """Add the ``queue`` extension to an API prediction object (while it is active)."""
    info = queue_info(prediction)
    if info is not None:
        body["queue"] = info
    return body


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "count": 0}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)], 3)

    return {"p50": at(0.5), "p95": at(0.95), "count": len(ordered)}


def timing_summary(model: Model) -> dict[str, dict[str, float | None]]:
    """p50/p95 (nearest rank) of queue, setup and run seconds of the model over the last day."""
    since = timezone.now() - timedelta(days=1)
    rows = list(
        Prediction.objects.filter(model=model, created_at__gte=since, started_at__isnull=False)
        .order_by("-created_at")
        .values_list("created_at", "started_at", "completed_at")[:TIMING_SAMPLE]
    )
    queued = [(started - created).total_seconds() for created, started, _ in rows if started]
    ran = [(done - started).total_seconds() for _, started, done in rows if started and done]
    setups = [
        (ready - created).total_seconds()
        for created, ready in Instance.objects.filter(
            version__model=model, created_at__gte=since, ready_at__isnull=False
        ).values_list("created_at", "ready_at")[:TIMING_SAMPLE]
        if ready
    ]
    return {
        "queue": _percentiles(queued),
        "setup": _percentiles(setups),
        "run": _percentiles(ran),
    }
