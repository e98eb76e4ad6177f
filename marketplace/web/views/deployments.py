"""Deployment pages: the list, create and edit forms, and a deployment's live page (instances,
queue depth, recent predictions), plus pre-warm and delete. Everything goes through
``deployments.config``, as the API does; outsiders get 404."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from marketplace.accounts.models import User
from marketplace.deployments import config
from marketplace.deployments.models import Deployment, Instance
from marketplace.predictions.models import Prediction
from marketplace.scheduling import instances, pools
from marketplace.web.access import accounts_of, chosen_account
from marketplace.web.forms import DeploymentForm

RECENT = 20


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


def _deployment(request: HttpRequest, owner: str, name: str, *, write: bool = False) -> Deployment:
    deployment = config.deployment_for(request.user, owner, name, write=write)
    if deployment is None:
        raise Http404("No such deployment")
    return deployment


def status(deployment: Deployment) -> dict[str, Any]:
    """What the live page shows and refreshes: instances by state and the queue."""
    pool = pools.deployment_pool(deployment.pk)
    state = instances.states([pool])[pool]
    rows = list(
        Instance.objects.filter(deployment=deployment, state__in=Instance.LIVE)
        .order_by("pk")
        .values("pk", "state", "version_id", "created_at", "ready_at")
    )
    return {
        "live": sum(1 for r in rows if r["state"] == Instance.State.READY),
        "starting": sum(1 for r in rows if r["state"] == Instance.State.STARTING) + state.pending,
        "stopping": sum(1 for r in rows if r["state"] == Instance.State.STOPPING),
        "queued": state.queued,
        "in_flight": state.in_flight,
        "instances": [
            {"id": r["pk"], "state": r["state"], "version": r["version_id"][:12]} for r in rows
        ],
    }


def _apply_errors(form: DeploymentForm, exc: config.DeploymentInvalid) -> None:
    for field, message in exc.errors.items():
        form.add_error(field if field in form.fields else None, message)


@login_required
def deployment_list(request: HttpRequest) -> HttpResponse:
    deployments = list(config.visible_deployments(request.user).order_by("owner__username", "name"))
    depths = instances.states([pools.deployment_pool(d.pk) for d in deployments])
    rows = [
        {
            "deployment": d,
            "queued": depths[pools.deployment_pool(d.pk)].queued,
            "live": len(depths[pools.deployment_pool(d.pk)].live),
        }
        for d in deployments
    ]
    return render(request, "deployments/list.html", {"rows": rows})


@login_required
def deployment_create(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    initial = {"model": request.GET.get("model", ""), "version": request.GET.get("version", "")}
    form = DeploymentForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            owner = chosen_account(user, request.POST.get("owner"))
            deployment = config.deployment_create(
                user=user, owner=owner, data=dict(form.cleaned_data)
            )
        except config.DeploymentInvalid as exc:
            _apply_errors(form, exc)
        else:
            return redirect("deployment", owner=deployment.owner.username, name=deployment.name)
    return render(
        request,
        "deployments/form.html",
        {"form": form, "editing": False, "owners": accounts_of(user)},
    )


@login_required
def deployment_edit(request: HttpRequest, owner: str, name: str) -> HttpResponse:
    deployment = _deployment(request, owner, name, write=True)
    initial = {
        "name": deployment.name,
        "model": deployment.model.full_name,
        "version": deployment.version_id,
        "hardware": deployment.hardware.sku,
        "min_instances": deployment.min_instances,
        "max_instances": deployment.max_instances,
        "idle_timeout": deployment.idle_timeout,
    }
    form = DeploymentForm(request.POST or None, initial=initial, editing=True)
    if request.method == "POST" and form.is_valid():
        changes = {
            k: v for k, v in form.cleaned_data.items() if k in config.FIELDS and v != initial.get(k)
        }
        try:
            if changes:
                config.deployment_update(user=_user(request), deployment=deployment, data=changes)
        except config.DeploymentInvalid as exc:
            _apply_errors(form, exc)
        else:
            return redirect("deployment", owner=deployment.owner.username, name=deployment.name)
    return render(
        request,
        "deployments/form.html",
        {"form": form, "editing": True, "deployment": deployment},
    )


@login_required
def deployment_page(request: HttpRequest, owner: str, name: str) -> HttpResponse:
    deployment = _deployment(request, owner, name)
    recent = list(
        Prediction.objects.filter(deployment=deployment)
        .select_related("account")
        .only("id", "status", "created_at", "started_at", "completed_at", "account__username")
        .order_by("-created_at")[:RECENT]
    )
    return render(
        request,
        "deployments/page.html",
        {
            "deployment": deployment,
            "release": deployment.releases.first(),
            "status": status(deployment),
            "recent": recent,
            "can_write": deployment.owner.can_write(request.user),
        },
    )


@login_required
def deployment_status(request: HttpRequest, owner: str, name: str) -> JsonResponse:
    return JsonResponse(status(_deployment(request, owner, name)))


@login_required
@require_POST
def deployment_prewarm(request: HttpRequest, owner: str, name: str) -> HttpResponse:
    deployment = _deployment(request, owner, name, write=True)
    try:
        wanted = max(1, int(request.POST.get("instances") or 1))
    except ValueError:
        wanted = 1
    config.prewarm(
        pool=pools.deployment_pool(deployment.pk),
        version=deployment.version,
        sku=deployment.hardware.sku,
        wanted=wanted,
        ceiling=deployment.max_instances,
    )
    return redirect("deployment", owner=deployment.owner.username, name=deployment.name)


@login_required
@require_POST
def deployment_delete(request: HttpRequest, owner: str, name: str) -> HttpResponse:
    deployment = _deployment(request, owner, name, write=True)
    config.deployment_delete(user=_user(request), deployment=deployment)
    return redirect("deployments")
