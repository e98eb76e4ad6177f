"""Chaos: many predictions through a live stack while its parts are killed, then the figures.

A web server, two RQ workers (with the scheduler) and two agents run against a Redis server of
this test's own (never the shared one). ``CHAOS_PREDICTIONS`` trivial predictions (1,000 by
default) are created through the API at ``CHAOS_RATE`` per second on ``demo/hello-concurrent``
(8 slots), each with a webhook to a receiver that fails half its requests (every message's
first attempt). Meanwhile: a worker is SIGKILLed and restarted, an agent is SIGKILLed and
restarted (same host name), a Cog server is SIGKILLed, Redis is killed and restarted empty
(queues, start requests, deadline and webhook jobs all lost), and the other agent is SIGKILLed
and restarted. Dead processes are restarted as a supervisor would. Then the reconciler and
webhook retries run until the system is quiet.

Printed and asserted: 0 predictions non-terminal, 0 lost (every 201 exists and ended), 0 billed
twice (at most one usage entry per prediction, one for each that started, none for the rest),
0 failed that had not started when their fault struck (a platform fault leaves queued work
queued), and every terminal prediction's ``completed`` webhook received with a valid Standard
Webhooks signature and its final status. Run with ``make chaos``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.db.models import Count
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from marketplace.billing.models import UsageEntry
from marketplace.predictions.models import Prediction
from marketplace.predictions.webhooks import WebhookDelivery
from tests.conftest import BASE_DIR, child_env, wait_for
from tests.factories import publish, token_for
from tests.redisserver import RedisServer
from tests.workers.test_prediction_path import cog_pids

pytestmark = [pytest.mark.chaos, pytest.mark.django_db(transaction=True)]

PREDICTIONS = int(os.environ.get("CHAOS_PREDICTIONS", "1000"))
RATE = float(os.environ.get("CHAOS_RATE", "60"))
RECOVERY_SECONDS = float(os.environ.get("CHAOS_RECOVERY_SECONDS", "900"))


class FlakyReceiver:
    """Fails half of its requests: the first attempt of every message (webhook-id) gets a 500,
    the next a 200. (Alternating over all requests instead can starve one message past the
    retry schedule, which is a receiver no retry policy can serve.) Keeps every request and
    what it answered."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes, int]] = []
        self.attempts: Counter[str] = Counter()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    seen = receiver.attempts[self.headers["webhook-id"]]
                    receiver.attempts[self.headers["webhook-id"]] += 1
                    status = 500 if seen % 2 == 0 else 200
                    receiver.requests.append((dict(self.headers.items()), body, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def chaos_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path).start()
    yield server
    if server.process and server.process.poll() is None:
        server.kill()


def _reconcile(env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, str(BASE_DIR / "manage.py"), "reconcile_predictions"],
        env=child_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=BASE_DIR,
        check=False,
    )
    return (result.stdout + result.stderr).strip()


async def _create_all(
    base: str, token: str, version: str, hook: str, progress: list[int]
) -> tuple[list[str], Counter[str]]:
    created: list[str] = []
    refused: Counter[str] = Counter()
    semaphore = asyncio.Semaphore(8)
    body = {"version": version, "webhook": hook, "webhook_events_filter": ["completed"]}
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=32)
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30, limits=limits) as c:

        async def one(i: int) -> None:
            async with semaphore:
                try:
                    response = await c.post(
                        "/v1/predictions", json={**body, "input": {"text": f"n{i}"}}
                    )
                except httpx.HTTPError as exc:
                    refused[type(exc).__name__] += 1
                    return
                finally:
                    progress[0] += 1
                if response.status_code == 201:
                    created.append(response.json()["id"])
                else:
                    refused[str(response.status_code)] += 1

        start = time.monotonic()
        tasks = []
        for i in range(PREDICTIONS):
            # Paced, so the faults land while predictions are arriving, queued and running.
            await asyncio.sleep(max(0.0, start + i / RATE - time.monotonic()))
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
    return created, refused


def test_chaos(
    user: Any,
    start_web: Any,
    start_worker: Any,
    start_agent: Any,
    chaos_redis: RedisServer,
) -> None:
    receiver = FlakyReceiver()
    version = publish(user, "hello-concurrent")
    env = {
        "REDIS_URL": chaos_redis.url,
        "WEBHOOK_RETRY_DELAYS": "1,1,2,2,3,5,5,10",
        "PREDICTION_STUCK_SECONDS": "5",
        "PREDICTION_RECONCILE_SECONDS": "3",
        "API_RATE_LIMIT_CREATE": "1000000",
        "API_RATE_LIMIT": "1000000",
        "INSTANCE_IDLE_TIMEOUT": "600",
        # PostgreSQL is shared (max_connections): small pools, except that every slot thread of
        # an agent holds a connection while it lives, so an agent needs one per slot and a few.
        "DATABASE_POOL_MIN": "0",
        "DATABASE_POOL_MAX": "4",
    }
    agent_env = {**env, "DATABASE_POOL_MAX": "12"}
    web = start_web(**{**env, "DATABASE_POOL_MAX": "8"})

    def new_worker() -> Any:
        return start_worker("--with-scheduler", "default", "webhooks", "billing", **env)

    workers = [new_worker() for _ in range(2)]
    agents = [start_agent(max_instances=1, **agent_env) for _ in range(2)]
    log: list[str] = []

    def note(what: str) -> None:
        log.append(f"{time.strftime('%H:%M:%S')} {what}")

    def restart_agent(index: int) -> None:
        old = agents[index]
        agents[index] = start_agent(max_instances=1, host_name=old.host_name, **agent_env)

    def supervise() -> None:
        """Restart whatever died, as systemd (Restart=always) would."""
        for index, worker in enumerate(workers):
            if not worker.alive():
                note(f"worker {index} had exited: restarted")
                workers[index] = new_worker()
        for index, agent in enumerate(agents):
            if agent.process is not None and agent.process.poll() is not None:
                note(f"agent {agent.host_name} had exited: restarted")
                restart_agent(index)

    def kill_worker() -> None:
        workers[0].kill()
        note("SIGKILL worker 0")
        workers[0] = new_worker()

    def kill_agent(index: int) -> Callable[[], None]:
        def act() -> None:
            agents[index].kill()
            note(f"SIGKILL agent {agents[index].host_name}")
            restart_agent(index)

        return act

    def kill_cog() -> None:
        for agent in agents:
            pids = cog_pids(agent.host_name)
            if pids:
                os.kill(pids[0], signal.SIGKILL)
                note(f"SIGKILL Cog server {pids[0]} of {agent.host_name}")
                return
        note("no Cog server to kill")

    def restart_redis() -> None:
        chaos_redis.kill()
        note("SIGKILL redis-server")
        time.sleep(1)
        chaos_redis.start()
        note("redis-server started again, empty")

    faults = [kill_worker, kill_agent(0), kill_cog, restart_redis, kill_agent(1)]
    progress = [0]
    done = threading.Event()

    def chaos() -> None:
        wait_for(lambda: progress[0] >= PREDICTIONS // 10 or done.is_set(), timeout=600)
        for fault in faults:
            fault()
            time.sleep(1.5)

    monkey = threading.Thread(target=chaos, daemon=True)
    monkey.start()
    started = time.monotonic()
    token = token_for(user)
    created, refused = asyncio.run(_create_all(web.url, token, version.id, receiver.url, progress))
    load_seconds = time.monotonic() - started
    done.set()
    monkey.join(timeout=120)
    note(f"load done: {len(created)} created in {load_seconds:.1f} s; refused {dict(refused)}")

    # Recovery: supervise, reconcile, let retries run, until quiet.
    deadline = time.monotonic() + RECOVERY_SECONDS
    while True:
        supervise()
        note("reconcile: " + _reconcile(env).splitlines()[-1])
        active = Prediction.objects.filter(status__in=("starting", "processing")).count()
        pending = WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING).count()
        if (active == 0 and pending == 0) or time.monotonic() > deadline:
            note(f"quiet: {active} active, {pending} webhook deliveries pending")
            break
        note(f"{active} active, {pending} webhook deliveries pending")
        time.sleep(3)
    recovery_seconds = time.monotonic() - started - load_seconds

    figures, problems = _figures(user, created, receiver)
    figures["load seconds"] = round(load_seconds, 1)
    figures["recovery seconds"] = round(recovery_seconds, 1)
    figures["create refusals"] = dict(refused)
    report = "\n".join(log) + "\n" + json.dumps(figures, indent=2, default=str)
    print("\nCHAOS FIGURES\n" + report)
    Path(BASE_DIR / "var").mkdir(exist_ok=True)
    (BASE_DIR / "var" / "chaos-figures.json").write_text(json.dumps(figures, indent=2, default=str))
    assert figures["non-terminal"] == 0, report
    assert figures["lost"] == 0, report
    assert figures["billed twice"] == 0 and figures["billing wrong"] == 0, report
    assert figures["failed before they started"] == 0, report
    assert figures["terminal webhooks not delivered"] == 0, report + "\n" + "\n".join(problems)
    assert len(created) >= PREDICTIONS * 0.9, report  # the outage refuses some creates, not most


def _figures(
    user: Any, created: list[str], receiver: FlakyReceiver
) -> tuple[dict[str, Any], list[str]]:
    rows = {p.id: p for p in Prediction.objects.filter(account=user.account)}
    statuses = Counter(p.status for p in rows.values())
    non_terminal = [p for p in rows.values() if not p.is_terminal]
    lost = [pid for pid in created if pid not in rows or not rows[pid].is_terminal]
    entries = Counter(
        dict(
            UsageEntry.objects.values_list("prediction_id")
            .annotate(n=Count("id"))
            .values_list("prediction_id", "n")
        )
    )
    billed_twice = [pid for pid, n in entries.items() if n > 1]
    # A platform fault never fails a prediction that had not started (predictions.policy).
    failed_unstarted = [
        p.id for p in rows.values() if p.status == Prediction.Status.FAILED and p.started_at is None
    ]
    # One entry for every prediction that started, none for any that did not.
    billing_wrong = [
        p.id for p in rows.values() if (p.started_at is not None) != (entries.get(p.id, 0) == 1)
    ]
    verifier = Webhook(user.account.webhook_secret)
    delivered: dict[str, str] = {}
    bad_signatures = 0
    for headers, body, status in receiver.requests:
        try:
            payload = verifier.verify(body, headers)
        except WebhookVerificationError:
            bad_signatures += 1
            continue
        if status == 200:
            delivered[payload["id"]] = payload["status"]
    problems = []
    for p in rows.values():
        if p.is_terminal and delivered.get(p.id) != p.status:
            problems.append(f"{p.id} {p.status}: webhook got {delivered.get(p.id)}")
    figures = {
        "predictions requested": PREDICTIONS,
        "created (201)": len(created),
        "rows": len(rows),
        "statuses": dict(statuses),
        "non-terminal": len(non_terminal),
        "lost": len(lost),
        "billed twice": len(billed_twice),
        "billing wrong": len(billing_wrong),
        "failed before they started": len(failed_unstarted),
        "webhook requests": len(receiver.requests),
        "webhook requests answered 500": sum(1 for *_, s in receiver.requests if s == 500),
        "bad signatures": bad_signatures,
        "terminal webhooks delivered": sum(
            1 for p in rows.values() if p.is_terminal and delivered.get(p.id) == p.status
        ),
        "terminal webhooks not delivered": len(problems),
        "deliveries still pending": list(
            WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING).values_list(
                "attempt_count", "next_attempt_at"
            )
        )[:10],
        "errors": dict(Counter((p.error or "")[:60] for p in rows.values() if p.error)),
    }
    return figures, problems
