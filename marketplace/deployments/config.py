"""Deployments: create, update (a new release each time), delete, pre-warm, and the API shape.

Both the API (``deployments/api.py``) and the pages (``web/views/deployments.py``) go through
these functions, so validation, releases and the audit log are the same for both. Every check
names the field it refused, and nothing is written when one fails.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet

from marketplace import audit
from marketplace.accounts.models import Account, AnyUser, User, member_accounts
from marketplace.catalog.models import Hardware, Model, Version
from marketplace.deployments.models import Deployment, DeploymentRelease, Instance
from marketplace.isotime import iso
from marketplace.predictions.models import Prediction
from marketplace.predictions.services import Outcome, prediction_finish
from marketplace.scheduling import instances, pools, starts

NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9._-]{0,98}[a-z0-9])?\Z")
FIELDS = ("version", "hardware", "min_instances", "max_instances", "idle_timeout")


class DeploymentInvalid(Exception):
    """Refused input: ``errors`` maps each bad field to what is wrong with it."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def visible_deployments(user: AnyUser) -> QuerySet[Deployment]:
    return Deployment.objects.filter(owner__in=member_accounts(user)).select_related(
        "owner", "model__owner", "version", "hardware"
    )


def deployment_for(
    user: AnyUser, owner: str, name: str, *, write: bool = False
) -> Deployment | None:
    """The deployment if ``user`` may see it (or change it, with ``write``); None otherwise."""
    deployment = visible_deployments(user).filter(owner__username__iexact=owner, name=name).first()
    if deployment is None or not deployment.owner.is_member(user):
        return None
    if write and not deployment.owner.can_write(user):
        return None
    return deployment


@dataclass
class Settings:
    version: Version
    hardware: Hardware
    min_instances: int
    max_instances: int
    idle_timeout: int | None


def _int(value: Any, field: str, errors: dict[str, str], low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        errors[field] = f"must be an integer from {low} to {high}"
        return low
    try:
        number = int(value)
    except ValueError:
        errors[field] = f"must be an integer from {low} to {high}"
        return low
    if not low <= number <= high:
        errors[field] = f"must be from {low} to {high}"
    return number


def _resolve(
    user: User, model: Model, data: dict[str, Any], current: Deployment | None
) -> Settings:
    """Validate ``data`` (a create body, or a partial update over ``current``)."""
    errors: dict[str, str] = {}
    cap = settings.DEPLOYMENT_MAX_INSTANCES
    version = current.version if current else None
    if "version" in data or current is None:
        ref = str(data.get("version") or "")
        version = (
            Version.objects.visible_to(user)
            .filter(model=model, hidden=False)
            .filter(pk=ref.rsplit(":", 1)[-1])
            .select_related("model")
            .first()
        )
        if version is None:
            errors["version"] = f"no such version of {model.full_name}"
    hardware = current.hardware if current else None
    if "hardware" in data or current is None:
        sku = str(data.get("hardware") or (model.default_hardware.sku if current is None else ""))
        hardware = Hardware.objects.filter(sku=sku).first()
        if hardware is None:
            errors["hardware"] = f"unknown hardware {sku!r} (see /v1/hardware)"
    low = current.min_instances if current else 0
    if "min_instances" in data:
        low = _int(data["min_instances"], "min_instances", errors, 0, cap)
    high = current.max_instances if current else 1
    if "max_instances" in data:
        # 0 takes the deployment offline (see deployment_update).
        high = _int(data["max_instances"], "max_instances", errors, 0, cap)
    if "min_instances" not in errors and "max_instances" not in errors and low > high:
        errors["min_instances"] = "must not exceed max_instances"
    idle = current.idle_timeout if current else None
    if data.get("idle_timeout") is not None:
        idle = _int(data["idle_timeout"], "idle_timeout", errors, 1, 7 * 24 * 3600)
    if errors:
        raise DeploymentInvalid(errors)
    assert version is not None and hardware is not None
    return Settings(version, hardware, low, high, idle)


def _release(deployment: Deployment, user: User) -> DeploymentRelease:
    last = deployment.releases.order_by("-number").values_list("number", flat=True).first()
    return DeploymentRelease.objects.create(
        deployment=deployment,
        number=(last or 0) + 1,
        version=deployment.version,
        hardware=deployment.hardware,
        min_instances=deployment.min_instances,
        max_instances=deployment.max_instances,
        created_by=user,
    )


def deployment_create(*, user: User, owner: Account, data: dict[str, Any]) -> Deployment:
    """Create ``owner``'s deployment from a Replicate create body (plus ``idle_timeout``)."""
    errors: dict[str, str] = {}
    name = str(data.get("name") or "")
    if not NAME_RE.match(name):
        errors["name"] = (
            "use lowercase letters, digits, '.', '_' and '-', starting and ending with a "
            "letter or digit (at most 100 characters)"
        )
    model_ref = str(data.get("model") or "")
    model_owner, _, model_name = model_ref.partition("/")
    model = (
        Model.objects.visible_to(user)
        .select_related("owner", "default_hardware")
        .named(model_owner, model_name)
    )
    if model is None:
        errors["model"] = f"no such model {model_ref!r} (give it as owner/name)"
    if not owner.can_write(user):
        errors["owner"] = "you cannot create deployments for this account"
    if errors:
        raise DeploymentInvalid(errors)
    assert model is not None
    resolved = _resolve(user, model, data, None)
    with transaction.atomic():
        if Deployment.objects.filter(owner=owner, name=name).exists():
            raise DeploymentInvalid({"name": f"{owner.username} already has a deployment {name}"})
        deployment = Deployment.objects.create(
            owner=owner,
            name=name,
            model=model,
            version=resolved.version,
            hardware=resolved.hardware,
            min_instances=resolved.min_instances,
            max_instances=resolved.max_instances,
            idle_timeout=resolved.idle_timeout,
        )
        _release(deployment, user)
        audit.record(
            "deployment.create",
            actor=user,
            account=owner,
            target=deployment,
            version=resolved.version.pk,
            hardware=resolved.hardware.sku,
            min_instances=resolved.min_instances,
            max_instances=resolved.max_instances,
        )
    return deployment


def deployment_update(*, user: User, deployment: Deployment, data: dict[str, Any]) -> Deployment:
    """Apply a partial update; any change makes a new release. The autoscaler rolls instances
    over to a new version: queued work waits on the deployment's own queue meanwhile."""
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise DeploymentInvalid(dict.fromkeys(unknown, "cannot be changed"))
    if not data:
        raise DeploymentInvalid({"body": f"give at least one of {', '.join(FIELDS[:4])}"})
    resolved = _resolve(user, deployment.model, data, deployment)
    with transaction.atomic():
        locked = Deployment.objects.select_for_update().get(pk=deployment.pk)
        before = {
            f: getattr(locked, f"{f}_id" if f in ("version", "hardware") else f) for f in FIELDS
        }
        locked.version = resolved.version
        locked.hardware = resolved.hardware
        locked.min_instances = resolved.min_instances
        locked.max_instances = resolved.max_instances
        locked.idle_timeout = resolved.idle_timeout
        locked.save()
        _release(locked, user)
        audit.record(
            "deployment.update",
            actor=user,
            account=locked.owner,
            target=locked,
            before=before,
            after={
                f: getattr(locked, f"{f}_id" if f in ("version", "hardware") else f) for f in FIELDS
            },
        )
    locked.owner = deployment.owner
    locked.model = deployment.model
    if locked.max_instances == 0:
        _take_offline(locked)
    return locked


def _take_offline(deployment: Deployment) -> None:
    """``max_instances`` 0: no instance may run, so its instances retire (finishing what they
    run) and what waits in its queue ends canceled, never started and never billed; new
    predictions are refused until it is updated again."""
    instance_ids = list(
        Instance.objects.filter(deployment=deployment, state__in=Instance.LIVE).values_list(
            "pk", flat=True
        )
    )
    instances.retire(instance_ids)
    for prediction_id in pools.drain(pools.deployment_pool(deployment.pk)):
        prediction_finish(prediction_id, Outcome(Prediction.Status.CANCELED))


def deployment_delete(*, user: User, deployment: Deployment) -> None:
    """Delete: its queued predictions end canceled (never started, never billed) and its
    instances are retired (they finish what they run)."""
    pool = pools.deployment_pool(deployment.pk)
    instance_ids = list(
        Instance.objects.filter(deployment=deployment, state__in=Instance.LIVE).values_list(
            "pk", flat=True
        )
    )
    with transaction.atomic():
        audit.record("deployment.delete", actor=user, account=deployment.owner, target=deployment)
        deployment.delete()
    instances.retire(instance_ids)
    for prediction_id in pools.drain(pool):
        prediction_finish(prediction_id, Outcome(Prediction.Status.CANCELED))


def prewarm(*, pool: str, version: Version, sku: str, wanted: int, ceiling: int) -> dict[str, int]:
    """Start instances ahead of traffic so that ``wanted`` (at most ``ceiling``) are live or on
    their way. They stay while busy and stop after their idle timeout like any other."""
    wanted = min(wanted, ceiling)
    state = instances.states([pool])[pool]
    have = len(state.live) + state.starting
    started = starts.request(pool, version.pk, sku, wanted - have) if wanted > have else 0
    return {"requested": started, "instances": have + started}


def to_api(deployment: Deployment, release: DeploymentRelease | None = None) -> dict[str, Any]:
    """Replicate's deployment object."""
    release = release or deployment.releases.select_related("created_by__personal_account").first()
    creator = release.created_by if release else None
    account = getattr(creator, "personal_account", None) if creator else None
    return {
        "owner": deployment.owner.username,
        "name": deployment.name,
        "current_release": {
            "number": release.number if release else 1,
            "model": deployment.model.full_name,
            "version": deployment.version_id,
            "created_at": iso(release.created_at if release else deployment.created_at),
            "created_by": {
                "type": "user",
                "username": account.username if account else "",
                "name": (account.name or account.username) if account else "",
                "github_url": (account.github_url or None) if account else None,
                "avatar_url": account.avatar_url if account else None,
            },
            "configuration": {
                "hardware": deployment.hardware.sku,
                "min_instances": deployment.min_instances,
                "max_instances": deployment.max_instances,
            },
        },
    }


def idle_timeout_of(deployment: Deployment | None, model: Model | None, default: float) -> float:
    """An instance's idle timeout: its deployment's, else its model's, else the host's."""
    for value in (
        deployment.idle_timeout if deployment else None,
        model.idle_timeout if model else None,
    ):
        if value:
            return float(value)
    return default


def slots_needed(demand: int, slots: int) -> int:
    return math.ceil(demand / max(1, slots))
