from __future__ import annotations

import signal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import connections

from workers.agent import Agent, runtime_for

# Slots an instance may run at once (a concurrency-8 model has 8), and the agent's own threads
# that use the database (heartbeat, autoscaler, reconciler, the start-request worker).
SLOTS_PER_INSTANCE = 8
AGENT_THREADS = 4


def size_database_pool(max_instances: int) -> None:
    """Let the agent's PostgreSQL pool hold a connection for every slot of every instance it may
    run, plus its own threads: slots use one only for their database steps (claim, progress,
    finish), but a burst ending together needs them all. ``DATABASE_POOL_MAX`` still wins when
    larger. Must run before the first query creates the pool."""
    pool = connections["default"].settings_dict.get("OPTIONS", {}).get("pool")
    if isinstance(pool, dict):
        wanted = AGENT_THREADS + SLOTS_PER_INSTANCE * max_instances
        pool["max_size"] = max(int(pool.get("max_size", 0)), wanted)


class Command(BaseCommand):
    help = "Run the host agent: start model instances for this machine's hardware and serve them."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--host-name", help="This host's name (default: AGENT_HOST_NAME or hostname)"
        )
        parser.add_argument(
            "--hardware", help="Comma-separated hardware SKUs (default: AGENT_HARDWARE)"
        )
        parser.add_argument(
            "--max-instances", type=int, help="Instances at once (default: AGENT_MAX_INSTANCES)"
        )
        parser.add_argument(
            "--idle-timeout", type=float, help="Seconds before an idle instance stops"
        )
        parser.add_argument("--runtime", help="local or docker (default: AGENT_RUNTIME)")
        parser.add_argument(
            "--sku", dest="hardware", help="Alias of --hardware: the hardware SKU(s) this host has"
        )
        parser.add_argument(
            "--gpus",
            help="Comma-separated GPU indices or UUIDs this agent may use (default: AGENT_GPUS, "
            "else every GPU nvidia-smi lists)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        size_database_pool(options["max_instances"] or settings.AGENT_MAX_INSTANCES)
        agent = Agent(
            runtime=runtime_for(options["runtime"]) if options["runtime"] else None,
            host_name=options["host_name"],
            hardware=[s.strip() for s in options["hardware"].split(",")]
            if options["hardware"]
            else None,
            max_instances=options["max_instances"],
            idle_timeout=options["idle_timeout"],
            gpus=options["gpus"].split(",") if options["gpus"] else None,
        )

        def _stop(signum: int, frame: Any) -> None:
            if agent.stopping.is_set():
                raise SystemExit(1)  # second signal: stop waiting for running predictions
            agent.stop()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        agent.run()
