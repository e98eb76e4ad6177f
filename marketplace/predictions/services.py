"""Prediction workflows: create (validate, store, queue), and the transitions runners make.

Every transition is a conditional UPDATE on the current status with its row count checked, so two
runners, a late Cog webhook or a cancel racing a finish can never both win.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from marketplace.accounts.models import Account, ApiToken, User
from marketplace.catalog import schema
from marketplace.catalog.models import Model, Version
from marketplace.deployments.models import Deployment
from marketplace.files.inputs import check_input_files
from marketplace.predictions import events, outbound, webhooks
from marketplace.predictions.models import Prediction
from marketplace.predictions.secrets import seal

logger = logging.getLogger(__name__)

Status = Prediction.Status
ACTIVE = (Status.STARTING, Status.PROCESSING)


class InputValidationError(Exception):
    def __init__(self, errors: list[schema.FieldError]):
        super().__init__("; ".join(e.description for e in errors))
        self.errors = errors


class PaymentRequired(Exception):
    """The account cannot pay for this prediction (balance, spend cap or a failed invoice).

    Raised by billing before anything is stored or queued; the API answers 402.
    """


@dataclass(frozen=True)
class Outcome:
    status: str
    output: Any = None
    error: str | None = None
    logs: str | None = None
    metrics: dict[str, Any] | None = None


def prediction_create(
    *,
    version: Version,
    input: Any,
    account: Account,
    created_by: User | None,
    created_by_token: ApiToken | None = None,
    source: str = Prediction.Source.API,
    webhook: str = "",
    webhook_events_filter: list[str] | None = None,
    deadline: datetime | None = None,
    deployment: Deployment | None = None,
) -> Prediction:
    """Validate the input against the version's schema, store the prediction, queue it on commit.

    Invalid input raises InputValidationError before anything is written or queued, and so do
    file inputs naming files the account does not own (``files.inputs``), and a webhook or URL
    inputs pointing at internal addresses (``outbound``). A deployment's
    prediction runs on the deployment's hardware and queues on its own pool.
    """
    normalized, errors = version.validate_input(input)
    # Platform file references: the account's own files or valid signed URLs only (files.inputs).
    files = check_input_files(openapi=version.schema, input=normalized, account=account)
    normalized = files.input
    errors += files.errors + outbound.check(version.schema, normalized, webhook)
    if errors:
        raise InputValidationError(errors)
    secret_values = {k: normalized[k] for k in version.secret_fields() if k in normalized}
    model = version.model
    from marketplace.billing import services as billing  # billing imports PaymentRequired

    with transaction.atomic():
        # Raises PaymentRequired; holds the account's billing row until commit.
        hold = billing.reserve(
            version=version,
            account=account,
            token=created_by_token,
            hardware=deployment.hardware if deployment else None,
        )
        prediction = Prediction.objects.create(
            model=model,
            version=version,
            account=account,
            created_by=created_by,
            created_by_token=created_by_token,
            hardware_id=deployment.hardware_id if deployment else model.default_hardware_id,
            deployment=deployment,
            source=source,
            input=schema.redact(version.schema, normalized),
            webhook=webhook,
            webhook_events_filter=webhook_events_filter or [],
            deadline=deadline,
        )
        hold.attach(prediction)
        files.record_uses(prediction.pk)
        Model.objects.filter(pk=model.pk).update(run_count=F("run_count") + 1)
        sealed = seal(secret_values)
        sku = deployment.hardware.sku if deployment else model.default_hardware.sku
        transaction.on_commit(lambda: _dispatch(prediction, sku, sealed))
    logger.info(
        "created for %s (%s)",
        version,
        source,
        extra={"prediction_id": prediction.id},
    )
    # The objects the caller serializes come from memory, not extra queries.
    prediction.model = model
    prediction.version = version
    return prediction


def _dispatch(prediction: Prediction, sku: str, sealed_secrets: str | None) -> None:
    from workers import queues

    pool = queues.pool_of(version_id=prediction.version_id, deployment_id=prediction.deployment_id)
    try:
        queues.enqueue_prediction(
            prediction.id,
            pool,
            prediction.account_id,
            sealed_secrets,
            version_id=prediction.version_id,
            sku=sku,
        )
    except Exception as exc:
        # Without the queue nothing would ever run it: say so instead of leaving it "starting".
        logger.exception("could not queue prediction %s", prediction.id)
        prediction_finish(
            prediction.id,
            Outcome(Status.FAILED, error=f"The prediction could not be queued: {exc}"),
        )
        prediction.refresh_from_db()


def prediction_claim(
    prediction_id: str, instance_id: int, *, version_id: str | None = None
) -> bool:
    """starting → processing, for exactly one runner (on ``version_id`` when a deployment's
    queued prediction runs on a newer release than it was created on)."""
    now = timezone.now()
    fields: dict[str, Any] = {"status": Status.PROCESSING, "started_at": now}
    if version_id is not None:
        fields["version_id"] = version_id
    claimed = Prediction.objects.filter(pk=prediction_id, status=Status.STARTING).update(
        instance_id=instance_id, **fields
    )
    if claimed:
        events.publish(prediction_id, events.STATUS, {"status": Status.PROCESSING})
        webhooks.notify(prediction_id, webhooks.START)
    return bool(claimed)


def prediction_progress(prediction_id: str, *, logs: str | None = None, output: Any = None) -> None:
    """Persist logs and partial output of a running prediction (never touches finished ones)."""
    fields: dict[str, Any] = {}
    if logs is not None:
        fields["logs"] = logs
    if output is not None:
        fields["output"] = output
    if fields and Prediction.objects.filter(pk=prediction_id, status=Status.PROCESSING).update(
        **fields
    ):
        webhooks.notify(prediction_id, webhooks.OUTPUT if output is not None else webhooks.LOGS)


def prediction_finish(prediction_id: str, outcome: Outcome) -> bool:
    """Move an active prediction to a terminal status; False if it had already ended."""
    if outcome.status not in Prediction.TERMINAL:
        raise ValueError(f"{outcome.status} is not a terminal status")
    from marketplace.billing import services as billing

    now = timezone.now()
    with transaction.atomic():
        prediction = (
            Prediction.objects.select_for_update(of=("self",))
            .select_related("version", "hardware")
            .defer("version__openapi_schema")  # billing needs the version's price, not its schema
            .filter(pk=prediction_id, status__in=ACTIVE)
            .first()
        )
        if prediction is None:
            return False
        Prediction.check_transition(prediction.status, outcome.status)
        metrics = dict(prediction.metrics)
        metrics.update(outcome.metrics or {})
        metrics["total_time"] = prediction.total_time(now)
        if prediction.started_at is not None and "predict_time" not in metrics:
            metrics["predict_time"] = round((now - prediction.started_at).total_seconds(), 6)
        prediction.status = outcome.status
        prediction.completed_at = now
        prediction.error = outcome.error
        prediction.metrics = metrics
        update = ["status", "completed_at", "error", "metrics"]
        if outcome.output is not None:
            prediction.output = outcome.output
            update.append("output")
        if outcome.logs is not None:
            prediction.logs = outcome.logs
            update.append("logs")
        # The ledger entry, the cost and the released reservation: in the same transaction.
        billing.settle(prediction)
        update.append("cost")
        prediction.save(update_fields=update)
        transaction.on_commit(lambda: _announce_done(prediction_id, outcome))
        if prediction.webhook:
            transaction.on_commit(lambda: webhooks.notify(prediction_id, webhooks.COMPLETED))
    logger.info("ended %s", outcome.status, extra={"prediction_id": prediction_id})
    return True


def _announce_done(prediction_id: str, outcome: Outcome) -> None:
    """The ``done`` event, after the commit. The database already holds the truth, so a Redis
    outage here must not turn a finished prediction into an error for whoever finished it (a
    create whose queueing failed would answer 500); waiters fall back to polling."""
    try:
        events.publish_done(prediction_id, outcome.status, outcome.error)
    except redis.RedisError:
        logger.warning("could not publish the end of %s", prediction_id, exc_info=True)


def prediction_cancel(prediction: Prediction) -> Prediction:
    """Cancel: a queued prediction ends at once; a running one is stopped by its runner."""
    from workers import queues

    if prediction.status == Status.STARTING:
        pool = queues.pool_of(
            version_id=prediction.version_id, deployment_id=prediction.deployment_id
        )
        queues.remove_queued_prediction(pool, prediction.id)
        # Loses (returns False) if a runner claimed it meanwhile; then it is processing.
        prediction_finish(prediction.id, Outcome(Status.CANCELED))
    prediction.refresh_from_db()
    if prediction.status == Status.PROCESSING:
        events.request_cancel(prediction.id)
    return prediction
