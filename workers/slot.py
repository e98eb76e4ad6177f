"""A concurrency slot of an instance: pops the next prediction of its pool and runs it.

An instance runs one slot per concurrency slot of its version. A slot pops only while its
instance is live in the pool (the pop script checks), so an instance that drains — idle, evicted,
retired, recycled — finishes what its slots hold and takes nothing new.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

import redis
from django.db import close_old_connections, connection
from django.utils import timezone

from marketplace.catalog.schema import REDACTED, secret_fields
from marketplace.deployments.models import Deployment
from marketplace.files.access import resolve_for_model
from marketplace.logcontext import prediction_context
from marketplace.predictions import outbound, policy
from marketplace.predictions.models import Prediction
from marketplace.predictions.policy import Outcome
from marketplace.predictions.secrets import unseal
from marketplace.predictions.services import prediction_claim, prediction_finish
from marketplace.scheduling import instances, pools
from workers.protocol import CogRun

if TYPE_CHECKING:
    from workers.supervisor import InstanceSupervisor

logger = logging.getLogger(__name__)

Status = Prediction.Status
DEQUEUE_TIMEOUT = 1


class Slot(threading.Thread):
    def __init__(self, supervisor: InstanceSupervisor, index: int):
        super().__init__(name=f"instance-{supervisor.instance.pk}-slot-{index}", daemon=True)
        self.supervisor = supervisor
        # Whether the prediction being performed was claimed (ran, or tried to, on Cog).
        self.claimed = False

    def run(self) -> None:
        supervisor = self.supervisor
        pool, instance_id = supervisor.pool, supervisor.instance.pk
        try:
            while not supervisor.stopping.is_set():
                try:
                    # Take queued work directly (one round trip); block on a wake-up token only
                    # when there is none.
                    popped = pools.pop(pool, instance_id)
                    if popped is None:
                        if not pools.wait_for_work(pool, DEQUEUE_TIMEOUT):
                            continue
                        popped = pools.pop(pool, instance_id, token_taken=True)
                except redis.RedisError:
                    logger.exception("slot %s: queue unavailable", self.name)
                    supervisor.stopping.wait(1)
                    continue
                if popped is None:
                    continue
                try:
                    self._perform(popped)
                except Exception:
                    # A slot outlives any one prediction: a dead slot would leave its instance
                    # registered and serving nothing. A prediction lost here is the reconciler's.
                    logger.exception(
                        "slot %s: %s failed outside the prediction", self.name, popped.prediction_id
                    )
        finally:
            connection.close()

    def _perform(self, popped: pools.Popped) -> None:
        supervisor = self.supervisor
        supervisor.begin()
        self.claimed = False
        began = time.monotonic()
        try:
            with prediction_context(popped.prediction_id):
                try:
                    close_old_connections()
                    self.execute(popped)
                except Exception as exc:
                    logger.exception("prediction %s crashed its runner", popped.prediction_id)
                    prediction_finish(
                        popped.prediction_id,
                        Outcome(Status.FAILED, error=f"Internal error while running: {exc}"),
                    )
        finally:
            supervisor.end()
            ran = time.monotonic() - began if self.claimed else None
            instances.finished_one(supervisor.pool, supervisor.instance.pk, ran)
            # Hand the database connection back to the pool between predictions: an idle slot
            # holding one would make an agent need a connection per slot of every instance.
            connection.close()

    def execute(self, popped: pools.Popped) -> None:
        supervisor = self.supervisor
        version = supervisor.version
        if supervisor.instance.deployment_id is not None and self._superseded(popped):
            return
        # A deployment's queued work runs on its current release, whichever it was created on.
        prediction = prediction_claim(
            popped.prediction_id,
            supervisor.instance.pk,
            version_id=version.pk if supervisor.instance.deployment_id is not None else None,
        )
        if prediction is None:
            self._not_claimed(popped.prediction_id)
            return
        self.claimed = True
        # The answer the finish announces shows its setup time: the runner holds its instance.
        prediction.instance = supervisor.instance
        # A training's input follows the trainer's schema (TrainingInput).
        openapi = version.train_schema if supervisor.training else version.schema
        try:
            payload = resolve_for_model(
                {**prediction.input, **unseal(popped.secrets)},
                account_id=prediction.account_id,
                openapi=openapi,
            )
        except ValueError as exc:
            prediction_finish(prediction.pk, Outcome(Status.FAILED, error=str(exc)))
            return
        if refused := outbound.check_dispatch(openapi, payload):
            prediction_finish(prediction.pk, Outcome(Status.FAILED, error=refused))
            return
        lost = sorted(k for k in secret_fields(openapi) if payload.get(k) == REDACTED)
        if lost:
            prediction_finish(prediction.pk, policy.secrets_lost(lost))
            return
        logger.info("running on instance %s", supervisor.instance.pk)
        # The model's run holds no database connection: the slot takes one again for progress
        # writes and the finish, so an agent's pool serves its busy slots' database steps only.
        connection.close()
        CogRun(supervisor, prediction).run(payload)

    @staticmethod
    def _not_claimed(prediction_id: str) -> None:
        """Canceled while queued or taken by another runner: nothing to do. Still starting, its
        ``Cancel-After`` passed while it waited: it never starts (and is not billed)."""
        if Prediction.objects.filter(
            pk=prediction_id, status=Status.STARTING, deadline__lte=timezone.now()
        ).exists():
            prediction_finish(prediction_id, policy.deadline_passed())

    def _superseded(self, popped: pools.Popped) -> bool:
        """A deployment moved to another version: hand the prediction back (to the front of its
        account's turn) for the new release, and stop taking work here."""
        deployment_id = self.supervisor.instance.deployment_id
        assert deployment_id is not None
        current = (
            Deployment.objects.filter(pk=deployment_id).values_list("version_id", flat=True).first()
        )
        if current is None or current == self.supervisor.version.pk:
            return False
        pools.push_back(
            self.supervisor.pool, popped.prediction_id, popped.account_id, popped.secrets
        )
        self.supervisor.retire()
        return True
