from __future__ import annotations

import signal
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from workers.agent import Agent, runtime_for


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
