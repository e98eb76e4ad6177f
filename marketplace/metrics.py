"""Prometheus metrics at ``/metrics``.

Web processes, agents and workers are separate processes that come and go, so nothing about
predictions is counted in memory: at scrape time :class:`PlatformCollector` reads the database
(predictions, instances, hosts, webhook attempts — the source of truth, so figures survive
restarts and agree whichever web process answers) and Redis (queue depths of every pool,
``marketplace.scheduling.pools``). Phase histograms are built from stored timestamps:
queue = ``started_at - created_at``, run = ``completed_at - started_at`` (predictions that
started and ended), setup = ``ready_at - created_at`` of instances. What has ended (predictions,
webhook attempts) comes from ``marketplace.rollups``, so a scrape costs the same however long
the history.

HTTP request latency is measured where it happens, by :class:`RequestLatencyMiddleware`, in
each web process: with several web workers set ``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's
multiprocess mode) so that every process's samples are summed at each scrape.
"""

from __future__ import annotations

import ipaddress
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from django.utils.crypto import constant_time_compare
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from marketplace.deployments.models import Deployment, Host, Instance
from marketplace.predictions.models import Prediction
from marketplace.predictions.policy import StopCause
from marketplace.rollups import totals as rollups
from marketplace.rollups.totals import PHASE_BUCKETS
from marketplace.scheduling import pools

ACTIVE = (Prediction.Status.STARTING, Prediction.Status.PROCESSING)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

_HTTP_REGISTRY = CollectorRegistry()
REQUEST_LATENCY = Histogram(
    "marketplace_http_request_duration_seconds",
    "Time to the response (its headers, for streams), by method, URL pattern and status.",
    ["method", "route", "status"],
    buckets=HTTP_BUCKETS,
    registry=_HTTP_REGISTRY,
)


def _histogram(family: HistogramMetricFamily, phase: str, totals: dict[str, Any]) -> None:
    buckets = [(str(float(b)), n) for b, n in zip(PHASE_BUCKETS, totals["le"], strict=True)]
    buckets.append(("+Inf", totals["n"]))
    family.add_metric([phase], buckets, totals["sum"])


class PlatformCollector(Collector):
    """Gauges, counters and histograms derived from the database and Redis at scrape time."""

    def collect(self) -> Iterator[Any]:
        yield from self._predictions()
        yield from self._instances()
        yield from self._queues()
        yield self._webhooks()

    def _predictions(self) -> Iterator[Any]:
        # Ended predictions come rolled up (constant cost as history grows); active ones are
        # few and counted live through the status index.
        ended = rollups.prediction_totals()
        active = list(
            Prediction.objects.filter(status__in=ACTIVE).values_list(
                "status", "created_at", "started_at"
            )
        )
        by_status = {**ended["status"]}
        for status, *_ in active:
            by_status[status] = by_status.get(status, 0) + 1
        created = CounterMetricFamily(
            "marketplace_predictions_created", "Predictions created (all time)."
        )
        created.add_metric([], sum(by_status.values()))
        yield created
        completed = CounterMetricFamily(
            "marketplace_predictions_completed",
            "Predictions that ended, by final status (all time).",
            labels=["status"],
        )
        gauge = GaugeMetricFamily(
            "marketplace_predictions_active",
            "Predictions queued (starting) or running (processing).",
            labels=["status"],
        )
        for status in Prediction.Status.values:
            family = completed if status in Prediction.TERMINAL else gauge
            family.add_metric([status], by_status.get(status, 0))
        yield completed
        yield gauge
        phases = HistogramMetricFamily(
            "marketplace_prediction_phase_seconds",
            "Time predictions spent per phase: queue (created → started), run (started → "
            "ended); setup is an instance's boot (created → ready).",
            labels=["phase"],
        )
        running = rollups.bucketed(
            [(started - created).total_seconds() for _, created, started in active if started]
        )
        _histogram(phases, "queue", rollups.add(ended["queue"], running))
        _histogram(phases, "run", ended["run"])
        setup = rollups.phases(
            Instance.objects.exclude(ready_at=None),
            {"setup": rollups.duration("ready_at", "created_at")},
        )
        _histogram(phases, "setup", setup["setup"])
        yield phases

    def _instances(self) -> Iterator[Any]:
        counted = Instance.objects.values("state").annotate(n=Count("pk"))
        states = {row["state"]: row["n"] for row in counted}
        family = GaugeMetricFamily(
            "marketplace_instances", "Model server instances by state.", labels=["state"]
        )
        for state in Instance.State.values:
            family.add_metric([state], states.get(state, 0))
        yield family
        stops = dict(
            Instance.objects.exclude(stop_cause="")
            .values_list("stop_cause")
            .annotate(n=Count("pk"))
            .values_list("stop_cause", "n")
        )
        stopped = CounterMetricFamily(
            "marketplace_instance_stops",
            "Instances that stopped, by cause (evicted: made room for another model on a full "
            "host; idle, retired, recycled, crashed, setup_failed, setup_interrupted, "
            "agent_stopped, agent_restarted, host_down).",
            labels=["cause"],
        )
        for cause in StopCause.values:
            stopped.add_metric([cause], stops.get(cause, 0))
        yield stopped
        gpus = GaugeMetricFamily(
            "marketplace_host_gpus", "GPUs of each host, used or free.", labels=["host", "state"]
        )
        held: dict[int, set[str]] = {}
        for host_id, device_ids in Instance.objects.filter(state__in=Instance.LIVE).values_list(
            "host_id", "gpu_device_ids"
        ):
            held.setdefault(host_id, set()).update(str(d) for d in device_ids or [])
        for host in Host.objects.filter(down_at=None).order_by("name"):
            total = set(host.gpu_device_ids)
            used = len(total & held.get(host.pk, set()))
            gpus.add_metric([host.name, "used"], used)
            gpus.add_metric([host.name, "free"], len(total) - used)
        yield gpus

    def _queues(self) -> Iterator[Any]:
        """Depth of every pool's queue: versions' shared pools and deployments' own."""
        versions = set(
            Prediction.objects.filter(status=Prediction.Status.STARTING, deployment__isnull=True)
            .values_list("version_id", flat=True)
            .distinct()
        ) | set(
            Instance.objects.filter(state__in=Instance.LIVE, deployment__isnull=True)
            .values_list("version_id", flat=True)
            .distinct()
        )
        deployments = {
            d.pk: d for d in Deployment.objects.select_related("owner").only("owner", "name")
        }
        names = [pools.version_pool(v) for v in sorted(versions)]
        names += [pools.deployment_pool(pk) for pk in sorted(deployments)]
        depths = pools.lengths(names)
        family = GaugeMetricFamily(
            "marketplace_queue_depth",
            "Predictions waiting in a pool's queue: a version's shared instances (version), or "
            "a deployment's own (deployment, as owner/name).",
            labels=["version", "deployment"],
        )
        for version_id in sorted(versions):
            family.add_metric([version_id, ""], depths[pools.version_pool(version_id)])
        for pk, deployment in sorted(deployments.items()):
            label = f"{deployment.owner.username}/{deployment.name}"
            family.add_metric(["", label], depths[pools.deployment_pool(pk)])
        yield family
        # Trainings wait in their version's training pool (train-mode instances).
        training = sorted(
            set(
                Prediction.objects.filter(
                    status=Prediction.Status.STARTING, kind=Prediction.Kind.TRAINING
                )
                .values_list("version_id", flat=True)
                .distinct()
            )
        )
        training_depths = pools.lengths([pools.training_pool(v) for v in training])
        trainings = GaugeMetricFamily(
            "marketplace_training_queue_depth",
            "Trainings waiting in a version's training pool.",
            labels=["version"],
        )
        for version_id in training:
            trainings.add_metric([version_id], training_depths[pools.training_pool(version_id)])
        yield trainings

    def _webhooks(self) -> CounterMetricFamily:
        counts = rollups.webhook_attempt_totals()
        family = CounterMetricFamily(
            "marketplace_webhook_attempts",
            "Webhook delivery attempts by outcome (success: a 2xx answer).",
            labels=["outcome"],
        )
        for outcome in ("success", "failure"):
            family.add_metric([outcome], counts.get(outcome, 0))
        return family


class _HttpCollector(Collector):
    """This process's request latencies (single-process mode)."""

    def collect(self) -> Iterator[Any]:
        yield from _HTTP_REGISTRY.collect()


def exposition() -> bytes:
    registry = CollectorRegistry()
    registry.register(PlatformCollector())
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
    else:
        registry.register(_HttpCollector())
    return generate_latest(registry)


def _allowed(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    keyword, _, given = request.headers.get("Authorization", "").partition(" ")
    if token and keyword.lower() == "bearer" and constant_time_compare(given.strip(), token):
        return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net) for net in settings.METRICS_ALLOW_IPS)


def metrics_view(request: HttpRequest) -> HttpResponse:
    """``GET /metrics``: for a Bearer ``METRICS_TOKEN`` or an address in ``METRICS_ALLOW_IPS``;
    everyone else (and everyone, when neither is set) gets 404."""
    if not _allowed(request):
        raise Http404("Not found")
    return HttpResponse(exposition(), content_type="text/plain; version=0.0.4; charset=utf-8")


class RequestLatencyMiddleware:
    """Observes every request's latency, labelled by its URL pattern (never the raw path, which
    would make a label per prediction id)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if iscoroutinefunction(self):
            return self._acall(request)
        started = time.perf_counter()
        response = self.get_response(request)
        _observe(request, response, started)
        return response

    async def _acall(self, request: HttpRequest) -> Any:
        started = time.perf_counter()
        response = await self.get_response(request)
        _observe(request, response, started)
        return response


def _observe(request: HttpRequest, response: HttpResponse, started: float) -> None:
    match = request.resolver_match
    route = match.route if match is not None else "unmatched"
    REQUEST_LATENCY.labels(request.method or "", route, str(response.status_code)).observe(
        time.perf_counter() - started
    )
