"""The operators' page: hosts, their GPUs, live instances and queue depths."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from marketplace.catalog.models import Hardware
from marketplace.deployments.models import Host, Instance
from workers import queues


def _queue_depths() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    hardware = [
        {"sku": sku, "depth": queues.hardware_queue(sku).count}
        for sku in Hardware.objects.order_by("sku").values_list("sku", flat=True)
    ]
    pools: list[dict[str, Any]] = []
    for name, state in queues.pool_states(queues.active_pools()).items():
        if state.queued:
            kind, _, ident = name.partition(":")
            pools.append({"kind": kind, "name": ident[:12], "depth": state.queued})
    pools.sort(key=lambda v: v["depth"], reverse=True)
    return [h for h in hardware if h["depth"]], pools


def hosts(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    if not request.user.is_staff:
        raise Http404
    live = list(
        Instance.objects.filter(state__in=Instance.LIVE)
        .select_related("host", "version__model__owner", "hardware")
        .order_by("host__name", "pk")
    )
    rows = []
    for host in Host.objects.prefetch_related("hardware").order_by("name"):
        mine = [i for i in live if i.host_id == host.pk]
        owner_of = {d: i for i in mine for d in i.gpu_device_ids}
        gpus = [
            {"id": device, "gpu": gpu, "instance": owner_of.get(device)}
            for device, gpu in zip(host.gpu_device_ids, host.gpus, strict=True)
        ]
        rows.append(
            {
                "host": host,
                "status": "down" if host.down_at else ("online" if host.is_online else "silent"),
                "skus": ", ".join(h.sku for h in host.hardware.all()),
                "gpus": gpus,
                "gpus_used": sum(1 for g in gpus if g["instance"]),
                "instances": len(mine),
            }
        )
    hardware_depths, version_depths = _queue_depths()
    return render(
        request,
        "deployments/hosts.html",
        {
            "rows": rows,
            "instances": live,
            "hardware_depths": hardware_depths,
            "version_depths": version_depths,
        },
    )
