"""The instance registry's atomic scripts, against real Redis."""

from __future__ import annotations

from marketplace.scheduling import instances, pools, starts
from marketplace.scheduling.placement import report_room, room_for, withdraw_room

POOL = pools.version_pool("v" * 64)
OTHER = pools.deployment_pool(7)


def test_only_a_live_instance_pops() -> None:
    pools.push(POOL, "p1", 1, None)
    assert pools.pop(POOL, 11) is None  # not registered yet
    instances.register(POOL, 11)
    popped = pools.pop(POOL, 11)
    assert popped is not None and popped.prediction_id == "p1"
    pools.push(POOL, "p2", 1, None)
    instances.start_draining(POOL, 11)
    assert pools.pop(POOL, 11) is None
    assert pools.queued_ids(POOL) == ["p2"]


def test_eviction_refuses_a_busy_instance_and_a_kept_one() -> None:
    instances.register(POOL, 1)
    instances.register(POOL, 2)
    pools.push(POOL, "p1", 1, None)
    assert pools.pop(POOL, 1) is not None  # instance 1 runs p1
    assert not instances.evict(POOL, 1)
    instances.finished_one(POOL, 1, 0.1)
    instances.set_floor(POOL, 2)  # a deployment's min_instances keeps both
    assert not instances.evict(POOL, 1)
    instances.set_floor(POOL, 1)
    assert instances.evict(POOL, 1)
    assert not instances.evict(POOL, 2)  # would go below the floor
    assert instances.live_count(POOL) == 1


def test_a_heartbeat_never_brings_a_draining_instance_back() -> None:
    instances.register(POOL, 5)
    assert instances.evict(POOL, 5)
    assert not instances.refresh(POOL, 5)
    assert instances.live_count(POOL) == 0
    # After a Redis restart (everything forgotten), heartbeats register live instances again.
    instances.gone(POOL, 5)
    assert instances.refresh(POOL, 5)
    assert instances.live_count(POOL) == 1


def test_setup_faults_are_counted_until_an_instance_registers() -> None:
    assert instances.setup_fault(OTHER) == 1
    assert instances.setup_fault(OTHER) == 2
    instances.register(OTHER, 9)
    assert instances.setup_fault(OTHER) == 1


def test_start_requests_are_rq_jobs_and_a_handed_back_one_keeps_its_place() -> None:
    assert starts.ensure(POOL, "v" * 64, "cpu")
    assert not starts.ensure(POOL, "v" * 64, "cpu")  # one is on its way
    assert starts.request(OTHER, "w" * 64, "cpu") == 1
    queue = starts.hardware_queue("cpu")
    jobs = queue.get_jobs()
    assert [j.args[0] for j in jobs] == [POOL, OTHER]
    first = jobs[0]
    request_id = first.args[3]
    queue.remove(first)
    assert starts.take(POOL, request_id)
    assert not starts.take(POOL, request_id)  # taken once
    starts.hand_back(POOL, "v" * 64, "cpu", request_id)
    assert [j.args[0] for j in queue.get_jobs()] == [POOL, OTHER]


def test_room_reports_add_up_and_expire() -> None:
    report_room("host-a", {"cpu": 2, "gpu-t4": 0}, ttl=30)
    report_room("host-b", {"cpu": 1}, ttl=30)
    assert room_for("cpu") == 3 and room_for("gpu-t4") == 0
    report_room("host-c", {"cpu": 5}, ttl=-1)  # already stale
    assert room_for("cpu") == 3
    withdraw_room("host-a", ["cpu", "gpu-t4"])
    assert room_for("cpu") == 1
