"""Prediction workflows: the one create path, and the transitions runners make.

``prediction_create`` is the only way a prediction comes to exist: every ``/v1`` create endpoint
(by version, by model, by deployment), the playground, MCP and trainings call it. It decides,
once each and before anything is written: the deadline (``Cancel-After``/``lifetime``), the
input (validated once against the version's schema), the files the input names (the caller's
own only), the URLs the platform would fetch (``outbound``), and the hardware (the deployment's,
else the model's); then, in one transaction, the billing reservation, the row and the run count;
and on commit it queues the prediction and schedules its deadline. A refusal raises a
``refusals.CreateRefused`` with nothing stored, queued or billed. Views parse and render only.

Every transition after that is a conditional UPDATE on the current status with its row count
checked, so two runners, a late Cog webhook or a cancel racing a finish can never both win.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import redis
from django.core.files import File
from django.db import transaction
from django.utils import timezone

from marketplace import hotcache, storage
from marketplace.accounts.models import Account, ApiToken, User
from marketplace.billing import services as billing
from marketplace.billing.services import PaymentRequired
from marketplace.catalog import schema
from marketplace.catalog.models import Version
from marketplace.deployments.models import Deployment, hardware_for
from marketplace.files.inputs import InputFiles, check_input_files
from marketplace.jsonsafe import scrub
from marketplace.predictions import events, lifetimes, outbound, trainings, uploads, webhooks
from marketplace.predictions.models import Prediction
from marketplace.predictions.policy import Outcome
from marketplace.predictions.refusals import (
    CreateRefused,
    DeploymentOffline,
    DestinationRefused,
    InputValidationError,
    InvalidParameter,
    NotTrainable,
    QueueUnavailable,
)
from marketplace.predictions.secrets import seal
from marketplace.scheduling import pools, starts

logger = logging.getLogger(__name__)

Status = Prediction.Status
ACTIVE = (Status.STARTING, Status.PROCESSING)
# Stands in for a file being uploaded with the request while the input is validated, before
# anything is stored (a URL, as file inputs are).
PENDING_UPLOAD = "https://uploads.invalid/pending"

__all__ = [
    "CreateRefused",
    "DeploymentOffline",
    "DestinationRefused",
    "InputValidationError",
    "InvalidParameter",
    "NotTrainable",
    "PaymentRequired",
    "prediction_create",
]


def prediction_create(
    *,
    input: Any,
    account: Account,
    created_by: User | None,
    version: Version | None = None,
    deployment: Deployment | None = None,
    created_by_token: ApiToken | None = None,
    source: str = Prediction.Source.API,
    webhook: str = "",
    webhook_events_filter: list[str] | None = None,
    cancel_after: str | None = None,
    lifetime: str | None = None,
    uploads_by_field: Mapping[str, Sequence[File]] | None = None,
    destination: str | None = None,
) -> Prediction:
    """Create a prediction of ``version`` — or of ``deployment``'s current release, on its
    hardware and its own pool — billed to ``account``.

    The caller found ``version``/``deployment`` through an access-checked selector. ``input``
    may hold ``PENDING_UPLOAD`` where ``uploads_by_field`` (the playground's files, per input
    field) are to go; they are stored only once everything else is known to be fine, and
    removed again if the create fails after all.

    With ``destination`` (``"owner/name"``) it is a *training* (``kind="training"``): the input
    is validated against the version's ``TrainingInput``, the destination must be writable by
    ``created_by`` (``trainings.destination_resolve``: 404/403 naming ``destination``; an absent
    model is created private in this transaction), it queues on the version's training pool
    (train-mode instances) and is billed as a training. Deployments do not train.
    """
    training = destination is not None
    target: trainings.Destination | None = None
    if training:
        if deployment is not None:
            raise ValueError("a deployment does not run trainings")
        if version is None:
            raise ValueError("prediction_create needs a version")
        if not version.is_trainable:
            raise NotTrainable(
                f"{version.model.full_name} cannot be trained: this version has no trainer "
                "(no train: in its cog.yaml, so no TrainingInput in its schema)"
            )
        target = trainings.destination_resolve(destination, user=created_by)
    if deployment is not None:
        if deployment.max_instances == 0:
            raise DeploymentOffline(
                f"The deployment {deployment.owner.username}/{deployment.name} is offline: its "
                "max_instances is 0. Update it to a positive max_instances to run predictions."
            )
        version = deployment.version
    if version is None:
        raise ValueError("prediction_create needs a version or a deployment")
    deadline = lifetimes.deadline_from(cancel_after=cancel_after, lifetime=lifetime)
    normalized, errors = version.validate_input(input, training=training)
    openapi = version.train_schema if training else version.schema
    # Platform file references: the account's own files or valid signed URLs only (files.inputs).
    files = check_input_files(openapi=openapi, input=normalized, account=account)
    normalized = files.input
    errors += files.errors + outbound.check(openapi, _without_pending(normalized), webhook)
    if errors:
        raise InputValidationError(errors)
    hardware = hardware_for(version, deployment)
    stored = _store_uploads(normalized, uploads_by_field or {}, account)
    files.used.update(name for name in map(storage.name_of, stored) if name)
    try:
        prediction = _insert(
            version=version,
            deployment=deployment,
            hardware=hardware,
            normalized=normalized,
            account=account,
            created_by=created_by,
            created_by_token=created_by_token,
            source=source,
            webhook=webhook,
            webhook_events_filter=webhook_events_filter,
            deadline=deadline,
            files=files,
            destination=target,
        )
    except BaseException:
        uploads.delete_stored(stored)
        raise
    logger.info("created for %s (%s)", version, source, extra={"prediction_id": prediction.id})
    return prediction


def _without_pending(normalized: dict[str, Any]) -> dict[str, Any]:
    """The input without the stand-ins for files still to be stored: what the file and outbound
    checks look at (every other value, URLs beside uploads in a list included)."""
    out: dict[str, Any] = {}
    for key, value in normalized.items():
        if value == PENDING_UPLOAD:
            continue
        if isinstance(value, list):
            value = [item for item in value if item != PENDING_UPLOAD]
        out[key] = value
    return out


def _store_uploads(
    normalized: dict[str, Any], files: Mapping[str, Sequence[File]], account: Account
) -> list[str]:
    """Store the request's files (``account``'s) where ``PENDING_UPLOAD`` stood."""
    stored: list[str] = []
    for field, items in files.items():
        references = [uploads.store_input_file(item, account) for item in items]
        stored += references
        value = normalized.get(field)
        if isinstance(value, list):
            normalized[field] = references + value[len(references) :]
        elif references:
            normalized[field] = references[0]
    return stored


def _insert(
    *,
    version: Version,
    deployment: Deployment | None,
    hardware: Any,
    normalized: dict[str, Any],
    account: Account,
    created_by: User | None,
    created_by_token: ApiToken | None,
    source: str,
    webhook: str,
    webhook_events_filter: list[str] | None,
    deadline: datetime | None,
    files: InputFiles,
    destination: trainings.Destination | None = None,
) -> Prediction:
    training = destination is not None
    openapi = version.train_schema if training else version.schema
    secret_values = {k: normalized[k] for k in schema.secret_fields(openapi) if k in normalized}
    model = version.model
    with transaction.atomic():
        # Raises PaymentRequired; holds the account's billing row until commit.
        hold = billing.reserve(
            version=version,
            account=account,
            token=created_by_token,
            hardware=hardware,
            training=training,
        )
        prediction = Prediction.objects.create(
            model=model,
            version=version,
            account=account,
            created_by=created_by,
            created_by_token=created_by_token,
            hardware=hardware,
            deployment=deployment,
            source=source,
            kind=Prediction.Kind.TRAINING if training else Prediction.Kind.PREDICTION,
            destination=destination.model_for(version) if destination is not None else None,
            input=schema.redact(openapi, normalized),
            webhook=webhook,
            webhook_events_filter=webhook_events_filter or [],
            deadline=deadline,
        )
        hold.attach(prediction)
        files.record_uses(prediction.pk)
        sealed = seal(secret_values)
        transaction.on_commit(lambda: _dispatch(prediction, hardware.sku, sealed))
    # The objects the caller serializes come from memory, not extra queries.
    prediction.model = model
    prediction.version = version
    return prediction


def _dispatch(prediction: Prediction, sku: str, sealed_secrets: str | None) -> None:
    """Queue the committed prediction and schedule its deadline."""
    pool = pools.pool_of_prediction(prediction)
    try:
        # Where it stands comes back with the queueing: the create's answer needs no other look.
        prediction.enqueued = starts.enqueue(
            prediction.id,
            pool,
            prediction.account_id,
            sealed_secrets,
            version_id=prediction.version_id,
            sku=sku,
            model_id=prediction.model_id,
        )
    except redis.RedisError:
        # Committed but not queued: Redis went away between the create's first use of it (the
        # rate limit) and here. The caller hears 503 and will try again, so the row goes (its
        # hold and file uses with it) rather than run twice. Should the script have run and only
        # its answer been lost, the runner that pops the id finds no row and skips it.
        logger.exception("could not queue prediction %s; refused with 503", prediction.id)
        Prediction.objects.filter(pk=prediction.pk, status=Prediction.Status.STARTING).delete()
        raise QueueUnavailable() from None
    if prediction.deadline is not None:
        try:
            lifetimes.schedule_expiry(prediction.id, prediction.deadline)
        except redis.RedisError:
            # The reconciler cancels a queued prediction past its deadline all the same.
            logger.exception("could not schedule the deadline of %s", prediction.id)


def prediction_claim(
    prediction_id: str, instance_id: int | None, *, version_id: str | None = None
) -> Prediction | None:
    """starting → processing, for exactly one runner, unless its ``Cancel-After`` deadline has
    passed (on ``version_id`` when a deployment's queued prediction runs on a newer release than
    it was created on). One ``UPDATE … RETURNING``: the row comes back with the claim, so the
    runner needs no other read. None if another runner, a cancel or the deadline came first."""
    now = timezone.now()
    table = Prediction._meta.db_table
    version_set = ", version_id = %s" if version_id is not None else ""
    params: list[Any] = [Status.PROCESSING, now, instance_id]
    if version_id is not None:
        params.append(version_id)
    params += [prediction_id, Status.STARTING, now]
    claimed = list(
        Prediction.objects.raw(
            f"UPDATE {table} SET status = %s, started_at = %s, instance_id = %s{version_set} "  # noqa: S608
            "WHERE id = %s AND status = %s AND (deadline IS NULL OR deadline > %s) RETURNING *",
            params,
        )
    )
    if not claimed:
        return None
    prediction = claimed[0]
    events.publish(prediction_id, events.STATUS, {"status": Status.PROCESSING})
    if prediction.webhook:
        webhooks.notify(
            prediction_id, webhooks.START, events_filter=prediction.webhook_events_filter
        )
    return prediction


def prediction_progress(
    prediction_id: str,
    *,
    logs: str | None = None,
    output: Any = None,
    webhook: bool = True,
) -> None:
    """Persist logs and partial output of a running prediction (never touches finished ones).
    ``webhook``: whether it has one (the runner knows; False spares the lookup)."""
    fields: dict[str, Any] = {}
    if logs is not None:
        fields["logs"] = scrub(logs)  # what a model prints may hold what PostgreSQL refuses
    if output is not None:
        fields["output"] = output
    if (
        fields
        and Prediction.objects.filter(pk=prediction_id, status=Status.PROCESSING).update(**fields)
        and webhook
    ):
        webhooks.notify(prediction_id, webhooks.OUTPUT if output is not None else webhooks.LOGS)


def prediction_finish(
    prediction_id: str, outcome: Outcome, *, running: Prediction | None = None
) -> bool:
    """Move an active prediction to a terminal status; False if it had already ended.

    ``running``: the prediction as its runner claimed it, with its instance attached — the
    runner's normal end. The transition is then one conditional UPDATE (which takes the row's
    lock) instead of a locked read of the row and the rows the answer needs; the version, model
    and hardware come from the hot cache (``hotcache.attach_catalog``); everything else is the
    same.
    """
    if outcome.status not in Prediction.TERMINAL:
        raise ValueError(f"{outcome.status} is not a terminal status")
    now = timezone.now()
    with transaction.atomic():
        if running is None or running.kind == Prediction.Kind.TRAINING:
            prediction = (
                Prediction.objects.select_for_update(of=("self",))
                # The model's owner and the instance come along for the answer the done event
                # carries.
                .select_related("version", "hardware", "model__owner", "instance")
                .defer("version__openapi_schema")  # billing needs the price, not the schema
                .filter(pk=prediction_id, status__in=ACTIVE)
                .first()
            )
            if prediction is None:
                return False
        else:
            prediction = running
            hotcache.attach_catalog(prediction)
        Prediction.check_transition(prediction.status, outcome.status)
        metrics = dict(prediction.metrics)
        metrics.update(outcome.metrics or {})
        metrics["total_time"] = prediction.total_time(now)
        if prediction.started_at is not None and "predict_time" not in metrics:
            metrics["predict_time"] = round((now - prediction.started_at).total_seconds(), 6)
        prediction.status = outcome.status
        prediction.completed_at = now
        # A model's own text (its error, its logs) may hold what PostgreSQL refuses (NUL, lone
        # surrogates): stored repaired rather than turning the end into a database error.
        prediction.error = scrub(outcome.error)
        prediction.metrics = metrics
        update = ["status", "completed_at", "error", "metrics"]
        if outcome.output is not None:
            prediction.output = outcome.output
            update.append("output")
        if outcome.logs is not None:
            prediction.logs = scrub(outcome.logs)
            update.append("logs")
        if prediction is running:
            ended = Prediction.objects.filter(pk=prediction_id, status__in=ACTIVE).update(
                **{name: getattr(prediction, name) for name in update}
            )
            if not ended:
                return False  # a cancel, the reconciler or a deadline ended it first
            update = []
        if prediction.kind == Prediction.Kind.TRAINING and outcome.status == Status.SUCCEEDED:
            _training_succeeded(prediction, outcome.output, update)
        # The ledger entry, the cost and the released reservation: in the same transaction.
        billing.settle(prediction)
        update.append("cost")
        prediction.save(update_fields=update)
        ended_as = Outcome(prediction.status, error=prediction.error)
        transaction.on_commit(lambda: _announce_done(prediction, ended_as))
        if prediction.webhook:
            wanted = prediction.webhook_events_filter
            transaction.on_commit(
                lambda: webhooks.notify(prediction_id, webhooks.COMPLETED, events_filter=wanted)
            )
    logger.info("ended %s", prediction.status, extra={"prediction_id": prediction_id})
    return True


def _training_succeeded(prediction: Prediction, output: Any, update: list[str]) -> None:
    """Its trained version, in the finishing transaction; a trainer that succeeded without
    weights fails the training (it was still billed for its time, as any failure)."""
    try:
        _, prediction.output = trainings.training_result(prediction, output)
    except trainings.NoWeights as exc:
        prediction.status = Status.FAILED
        prediction.error = str(exc)
    if "output" not in update:
        update.append("output")


def _announce_done(prediction: Prediction, outcome: Outcome) -> None:
    """The ``done`` event, after the commit. The database already holds the truth, so a Redis
    outage here must not turn a finished prediction into an error for whoever finished it (a
    create whose queueing failed would answer 500); waiters fall back to polling."""
    body = prediction.to_api()  # for a waiting request (events.publish_done decides if it goes)
    try:
        events.publish_done(prediction.id, outcome.status, outcome.error, prediction=body)
    except redis.RedisError:
        logger.warning("could not publish the end of %s", prediction.id, exc_info=True)


def prediction_cancel(prediction: Prediction) -> Prediction:
    """Cancel: a queued prediction ends at once; a running one is stopped by its runner."""
    if prediction.status == Status.STARTING:
        pools.remove(pools.pool_of_prediction(prediction), prediction.id)
        # Loses (returns False) if a runner claimed it meanwhile; then it is processing.
        prediction_finish(prediction.id, Outcome(Status.CANCELED))
    prediction.refresh_from_db()
    if prediction.status == Status.PROCESSING:
        events.request_cancel(prediction.id)
    return prediction
