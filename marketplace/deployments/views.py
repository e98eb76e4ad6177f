"""The operators' page: hosts, their GPUs, live instances, evictions and queue depths."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from marketplace.catalog.models import Hardware
from marketplace.deployments.models import Host, Instance
from marketplace.predictions.policy import StopCause
from marketplace.scheduling import instances, pools, starts

# Evictions listed on the hosts page (the last day's, newest first).
RECENT_EVICTIONS = 20


def _queue_depths() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    hardware = [
        {"sku": sku, "depth": starts.hardware_queue(sku).count}
        for sku in Hardware.objects.order_by("sku").values_list("sku", flat=True)
    ]
    waiting: list[dict[str, Any]] = []
    for name, state in instances.states(pools.active()).items():
        if state.queued:
            kind, _, ident = name.partition(":")
            waiting.append({"kind": kind, "name": ident[:12], "depth": state.queued})
    waiting.sort(key=lambda v: v["depth"], reverse=True)
    return [h for h in hardware if h["depth"]], waiting


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
    since = timezone.now() - timedelta(days=1)
    evicted = Instance.objects.filter(stop_cause=StopCause.EVICTED, stopped_at__gte=since)
    evictions = dict(
        evicted.values_list("host_id").annotate(n=Count("pk")).values_list("host_id", "n")
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
                "evictions": evictions.get(host.pk, 0),
            }
        )
    hardware_depths, version_depths = _queue_depths()
    recent = evicted.select_related(
        "host", "version__model__owner", "replaced_by__version__model__owner"
    ).order_by("-stopped_at")[:RECENT_EVICTIONS]
    return render(
        request,
        "deployments/hosts.html",
        {
            "rows": rows,
            "instances": live,
            "evictions": list(recent),
            "hardware_depths": hardware_depths,
            "version_depths": version_depths,
        },
    )
