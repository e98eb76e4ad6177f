"""Placement with model swapping: where a new instance goes, and which idle one makes room.

A host has room for an instance of some hardware when it has a free instance slot
(``AGENT_MAX_INSTANCES``) and enough free GPUs — or when evicting idle instances of *other* pools
would give it both. Eviction picks the least recently used idle instances first and never takes
an instance that runs a prediction, one younger than ``INSTANCE_MIN_RESIDENCY`` (which keeps two
models contending for one GPU from thrashing), or one its deployment's ``min_instances`` keeps
(checked atomically in ``instances.evict``). Evicted instances drain and stop, and the new one
starts in their place with their GPUs.

Agents report their room per hardware type here (``report_room``), so that a prediction waiting
on a start request that no host can take says so (``waiting_for_capacity``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar, cast

from marketplace.redisconn import as_text, get_redis

T = TypeVar("T")

ROOM_PREFIX = "mk:room:"


@dataclass(frozen=True)
class Resident(Generic[T]):
    """An instance on a host, as placement sees it."""

    ref: T
    pool: str
    gpus: int
    busy: bool
    # Seconds since it became ready, and since it last ran a prediction (or became ready).
    resident_for: float
    idle_for: float


def evictable(
    residents: Iterable[Resident[T]], *, for_pool: str, min_residency: float
) -> list[Resident[T]]:
    """Instances that may make room for ``for_pool``, least recently used first."""
    eligible = [
        r
        for r in residents
        if not r.busy and r.pool != for_pool and r.resident_for >= min_residency
    ]
    return sorted(eligible, key=lambda r: r.idle_for, reverse=True)


def choose_victims(
    candidates: Sequence[Resident[T]], *, free_slots: int, free_gpus: int, gpus_needed: int
) -> list[Resident[T]] | None:
    """The fewest least-recently-used ``candidates`` (already in LRU order) to evict so that one
    more instance fits: a slot and ``gpus_needed`` GPUs. ``[]`` if it fits already; None if even
    evicting every candidate would not make it fit."""
    victims: list[Resident[T]] = []
    slots, gpus = free_slots, free_gpus
    if gpus < gpus_needed:
        for candidate in candidates:
            if gpus >= gpus_needed:
                break
            if candidate.gpus:
                victims.append(candidate)
                slots += 1
                gpus += candidate.gpus
        if gpus < gpus_needed:
            return None
    if slots < 1:
        spare = [c for c in candidates if c not in victims]
        if not spare:
            return None
        victims.append(spare[0])
    return victims


def room(
    candidates: Sequence[Resident[T]], *, free_slots: int, free_gpus: int, gpus_needed: int
) -> int:
    """How many instances needing ``gpus_needed`` GPUs could start, evicting ``candidates`` as
    needed (an upper bound that assumes each start evicts what it must)."""
    slots = free_slots + len(candidates)
    if not gpus_needed:
        return max(0, slots)
    gpus = free_gpus + sum(c.gpus for c in candidates)
    return max(0, min(slots, gpus // gpus_needed))


# --- room reports ------------------------------------------------------------------------------
def report_room(host: str, room_by_sku: dict[str, int], ttl: float) -> None:
    """What this host could start now, per hardware type, valid for ``ttl`` seconds."""
    expires = time.time() + ttl
    pipe = get_redis().pipeline(transaction=False)
    for sku, count in room_by_sku.items():
        pipe.hset(room_key(sku), host, f"{count} {expires:.3f}")
        pipe.expire(room_key(sku), int(ttl) + 60)
    pipe.execute()


def withdraw_room(host: str, skus: Iterable[str]) -> None:
    pipe = get_redis().pipeline(transaction=False)
    for sku in skus:
        pipe.hdel(room_key(sku), host)
    pipe.execute()


def room_key(sku: str) -> str:
    return ROOM_PREFIX + sku


def room_for(sku: str) -> int:
    """Instances of ``sku`` the hosts that reported lately could start now."""
    return room_in(cast(dict[bytes, bytes], get_redis().hgetall(room_key(sku))))


def room_in(reports: dict[bytes, bytes]) -> int:
    """The room the still-valid reports of a ``mk:room:<sku>`` hash add up to."""
    now = time.time()
    total = 0
    for raw in reports.values():
        count, _, expires = as_text(raw).partition(" ")
        if float(expires or 0) >= now:
            total += int(count)
    return total
