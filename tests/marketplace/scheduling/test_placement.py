"""Placement with model swapping, as pure bookkeeping: which idle instances make room for a
waiting model, GPUs included. (No GPU here: these are the rules real GPU hosts run.)"""

from __future__ import annotations

from marketplace.scheduling.placement import Resident, choose_victims, evictable, room


def resident(
    ref: str,
    *,
    pool: str = "version:other",
    gpus: int = 0,
    busy: bool = False,
    resident_for: float = 600.0,
    idle_for: float = 60.0,
) -> Resident[str]:
    return Resident(ref, pool, gpus, busy, resident_for, idle_for)


def refs(victims: list[Resident[str]] | None) -> list[str] | None:
    return None if victims is None else [v.ref for v in victims]


def test_the_least_recently_used_idle_instance_goes_first() -> None:
    candidates = evictable(
        [resident("a", idle_for=5), resident("b", idle_for=90), resident("c", idle_for=30)],
        for_pool="version:new",
        min_residency=30,
    )
    assert [c.ref for c in candidates] == ["b", "c", "a"]
    assert refs(choose_victims(candidates, free_slots=0, free_gpus=0, gpus_needed=0)) == ["b"]


def test_busy_young_and_same_pool_instances_are_never_candidates() -> None:
    candidates = evictable(
        [
            resident("busy", busy=True, idle_for=900),
            resident("young", resident_for=10, idle_for=10),
            resident("mine", pool="version:new", idle_for=900),
            resident("ok", idle_for=1),
        ],
        for_pool="version:new",
        min_residency=30,
    )
    assert [c.ref for c in candidates] == ["ok"]


def test_nothing_is_evicted_while_there_is_room() -> None:
    candidates = evictable([resident("a")], for_pool="version:new", min_residency=0)
    assert choose_victims(candidates, free_slots=1, free_gpus=2, gpus_needed=1) == []


def test_nothing_can_be_done_without_candidates() -> None:
    assert choose_victims([], free_slots=0, free_gpus=0, gpus_needed=0) is None
    assert choose_victims([], free_slots=1, free_gpus=0, gpus_needed=1) is None


def test_gpus_come_from_the_least_recently_used_gpu_instances() -> None:
    candidates = evictable(
        [
            resident("cpu-old", idle_for=999),
            resident("gpu-a", gpus=1, idle_for=500),
            resident("gpu-b", gpus=1, idle_for=400),
            resident("gpu-c", gpus=2, idle_for=10),
        ],
        for_pool="version:new",
        min_residency=0,
    )
    # Two GPUs needed, none free, slots to spare: the two least recently used GPU instances.
    assert refs(choose_victims(candidates, free_slots=2, free_gpus=0, gpus_needed=2)) == [
        "gpu-a",
        "gpu-b",
    ]
    # One GPU free already: one more GPU is enough.
    assert refs(choose_victims(candidates, free_slots=1, free_gpus=1, gpus_needed=2)) == ["gpu-a"]
    # Enough GPUs, but no instance slot: the least recently used of any kind.
    assert refs(choose_victims(candidates, free_slots=0, free_gpus=4, gpus_needed=2)) == ["cpu-old"]
    # More GPUs than every candidate holds: impossible.
    assert choose_victims(candidates, free_slots=0, free_gpus=0, gpus_needed=8) is None


def test_room_counts_what_eviction_could_free() -> None:
    candidates = [resident("a", gpus=1), resident("b", gpus=1), resident("c")]
    assert room([], free_slots=2, free_gpus=0, gpus_needed=0) == 2
    assert room(candidates, free_slots=0, free_gpus=0, gpus_needed=0) == 3
    assert room(candidates, free_slots=0, free_gpus=0, gpus_needed=1) == 2
    assert room(candidates, free_slots=1, free_gpus=1, gpus_needed=2) == 1
    assert room([], free_slots=0, free_gpus=8, gpus_needed=1) == 0
