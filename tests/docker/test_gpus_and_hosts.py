"""GPU bookkeeping and host failure: the platform's part, exercised without a GPU.

The device ids under test are the platform's decisions (which GPUs an instance gets), checked on
real agent processes; Docker only ever receives them as ``device_ids`` (see the last tests).
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from marketplace.catalog.models import Hardware, Model, Version
from marketplace.deployments.models import Host, Instance
from marketplace.deployments.services import instance_create, reconcile_down_hosts
from marketplace.predictions.models import Prediction
from tests.conftest import wait_for
from tests.factories import EXAMPLES, publish
from workers.agent import detect_gpus
from workers.runtimes.base import InstanceSpec
from workers.runtimes.docker import container_options

pytestmark = pytest.mark.slow


def a100() -> Hardware:
    hardware, _ = Hardware.objects.update_or_create(
        sku="gpu-a100-large",
        defaults={"name": "A100", "price_per_second": "0.0014", "gpu_count": 1,
                  "cpu_count": 10, "memory_gb": 144},
    )  # fmt: skip
    return hardware


def _slow_versions(user: Any, tmp_path: Path, count: int) -> list[Version]:
    """Distinct versions of the slow model (a version id is a digest of the code)."""
    versions = []
    for i in range(count):
        directory = tmp_path / f"slow{i}"
        shutil.copytree(EXAMPLES / "slow-progress", directory)
        (directory / "README.md").write_text(f"Copy {i} of the slow model.\n")
        version = publish(user, directory, f"slow{i}")
        Model.objects.filter(pk=version.model_id).update(default_hardware=a100())
        versions.append(version)
    return versions


def test_concurrent_starts_never_hand_out_a_gpu_twice(transactional_db: None, user: Any) -> None:
    hardware = a100()
    version = publish(user, "hello", "hello")
    host = Host.objects.create(
        name="gpu-box", runtime="docker", gpus=[{"index": i, "uuid": f"GPU-{i}"} for i in range(4)]
    )
    results: list[Instance | None] = []
    barrier = threading.Barrier(10)

    def start() -> None:
        try:
            barrier.wait()
            results.append(
                instance_create(host=host, version=version, hardware=hardware, runtime="docker")
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=start) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    started = [r for r in results if r is not None]
    assert len(started) == 4 and results.count(None) == 6
    devices = [d for instance in started for d in instance.gpu_device_ids]
    assert sorted(devices) == ["GPU-0", "GPU-1", "GPU-2", "GPU-3"]
    # Stopping an instance frees its GPU for the next start.
    Instance.objects.filter(pk=started[0].pk).update(state=Instance.State.STOPPED)
    again = instance_create(host=host, version=version, hardware=hardware, runtime="docker")
    assert again is not None and again.gpu_device_ids == started[0].gpu_device_ids


def test_two_agents_with_disjoint_gpus_under_concurrent_starts(
    start_agent: Any, user: Any, api: Any, tmp_path: Path
) -> None:
    versions = _slow_versions(user, tmp_path, 5)
    hosts = {"agent-a": {"0", "1"}, "agent-b": {"2", "3"}}
    for name, gpus in hosts.items():
        start_agent(host_name=name, idle_timeout=1.5, AGENT_HARDWARE="gpu-a100-large",
                    AGENT_GPUS=",".join(sorted(gpus)))  # fmt: skip
    violations: list[str] = []
    seen_live = 0
    stop = threading.Event()

    def watch() -> None:
        nonlocal seen_live
        try:
            while not stop.is_set():
                live = list(Instance.objects.filter(state__in=Instance.LIVE).select_related("host"))
                seen_live = max(seen_live, len(live))
                for name, gpus in hosts.items():
                    ids = [d for i in live if i.host.name == name for d in i.gpu_device_ids]
                    if len(ids) != len(set(ids)) or not set(ids) <= gpus:
                        violations.append(f"{name}: {ids}")
                time.sleep(0.02)
        finally:
            connection.close()

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        ids = []
        for version in versions:
            response = api.post(
                "/v1/predictions",
                {"version": version.id, "input": {"steps": 4, "step_seconds": 0.5}},
                format="json",
            )
            assert response.status_code == 201, response.content
            ids.append(response.json()["id"])
        done = wait_for(
            lambda: (
                Prediction.objects.filter(pk__in=ids, status__in=Prediction.TERMINAL).count()
                == len(ids)
            ),
            timeout=120,
            message="all five predictions",
        )
        assert done
    finally:
        stop.set()
        watcher.join()
    assert violations == []
    statuses = set(Prediction.objects.filter(pk__in=ids).values_list("status", flat=True))
    assert statuses == {"succeeded"}
    # Four GPUs for five models: never more than four instances at once, all of them with one.
    assert seen_live <= 4
    instances = Instance.objects.filter(version__in=versions)
    assert instances.count() >= 5
    for instance in instances.select_related("host"):
        assert len(instance.gpu_device_ids) == 1
        assert set(instance.gpu_device_ids) <= hosts[instance.host.name]


def test_a_silent_host_is_marked_down_its_running_prediction_fails_and_queued_work_moves(
    start_agent: Any, user: Any, api: Any
) -> None:
    version = publish(user, "slow-progress", "slow")
    first_agent = start_agent(host_name="doomed")
    running = api.post(
        "/v1/predictions",
        {"version": version.id, "input": {"steps": 100, "step_seconds": 1.0}},
        format="json",
    ).json()["id"]
    wait_for(
        lambda: Prediction.objects.filter(pk=running, status="processing").exists(),
        timeout=60,
        message="the first prediction to start",
    )
    queued = api.post(
        "/v1/predictions", {"version": version.id, "input": {"steps": 1}}, format="json"
    ).json()["id"]
    first_agent.kill()  # no goodbye: the host just goes silent

    start_agent(host_name="survivor")  # its heartbeat loop writes off silent hosts
    failed = wait_for(
        lambda: Prediction.objects.filter(pk=running, status="failed").first(),
        timeout=40,
        message="the lost prediction to fail",
    )
    assert "host doomed" in failed.error and "stopped responding" in failed.error
    doomed = Host.objects.get(name="doomed")
    assert doomed.down_at is not None and not doomed.is_online
    assert not Instance.objects.filter(host=doomed, state__in=Instance.LIVE).exists()
    moved = wait_for(
        lambda: Prediction.objects.filter(pk=queued, status__in=Prediction.TERMINAL).first(),
        timeout=60,
        message="the queued prediction to run elsewhere",
    )
    assert moved.status == "succeeded", moved.error
    assert Instance.objects.get(pk=moved.instance_id).host.name == "survivor"
    assert reconcile_down_hosts() == []  # nothing left to write off, nothing twice


def test_gpu_inventory_from_flags_without_nvidia_smi(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    gpus = detect_gpus(["2", "3", "GPU-8f1c"])
    assert [Host(gpus=gpus).gpu_device_ids] == [["2", "3", "GPU-8f1c"]]


def test_gpu_inventory_from_nvidia_smi_filtered_by_flags(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # nvidia-smi's documented CSV output, from a stand-in executable (this machine has no GPU).
    smi = tmp_path / "nvidia-smi"
    smi.write_text(
        "#!/bin/sh\n"
        "echo '0, GPU-aaaa, NVIDIA A100-SXM4-80GB, 81920'\n"
        "echo '1, GPU-bbbb, NVIDIA A100-SXM4-80GB, 81920'\n"
        "echo '2, GPU-cccc, NVIDIA A100-SXM4-80GB, 81920'\n"
    )
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    gpus = detect_gpus(["1", "GPU-cccc"])
    assert Host(gpus=gpus).gpu_device_ids == ["GPU-bbbb", "GPU-cccc"]
    assert gpus[0]["name"] == "NVIDIA A100-SXM4-80GB" and gpus[0]["memory_mb"] == 81920
    assert len(detect_gpus()) == 3


def test_docker_gets_exact_device_ids_and_hardware_limits() -> None:
    spec = InstanceSpec(
        instance_id=7, host_name="gpu-box", version_id="v" * 64, image="r/a/b@sha256:" + "0" * 64,
        upload_url="http://127.0.0.1:9/upload/t/", env={"WEBHOOK_AUTH_TOKEN": "t"},
        gpu_device_ids=["GPU-bbbb", "GPU-cccc"], cpu_count=10, memory_gb=144,
    )  # fmt: skip
    options = container_options(spec, network="host", port=5555, host_cpus=2)
    [request] = options["device_requests"]
    assert request["DeviceIDs"] == ["GPU-bbbb", "GPU-cccc"]
    assert request["Count"] == 0  # never count=N: that always means GPUs 0..N-1
    assert request["Capabilities"] == [["gpu"]]
    assert options["mem_limit"] == "144g"
    assert options["nano_cpus"] == 2_000_000_000  # clamped to what the host has
    assert options["labels"]["marketplace.gpus"] == "GPU-bbbb,GPU-cccc"
    assert options["labels"]["marketplace.host"] == "gpu-box"
    assert options["environment"]["PORT"] == "5555"
    assert options["command"] == [
        "python", "-m", "cog.server.http", "--host", "127.0.0.1",
        "--upload-url", "http://127.0.0.1:9/upload/t/",
    ]  # fmt: skip
    bridged = container_options(spec, network="models", publish_host="10.0.0.5")
    assert bridged["ports"] == {"5000/tcp": ("10.0.0.5", None)} and bridged["network"] == "models"
    cpu_only = container_options(
        InstanceSpec(instance_id=8, host_name="h", version_id="v"), network="host", port=1
    )
    assert "device_requests" not in cpu_only
