"""What a model's owner does on the site: create a model, edit it, see how to push versions."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from marketplace import audit
from marketplace.accounts.models import User
from marketplace.catalog.covers import store_cover
from marketplace.catalog.models import Hardware
from marketplace.catalog.services import record_model_change
from marketplace.catalog.tags import set_tags
from marketplace.registry.models import ImagePush
from marketplace.web.access import accounts_of, owned_model_for, trainable
from marketplace.web.forms import ModelCreateForm, ModelEditForm
from marketplace.web.rendering import describe


def registry_host() -> str:
    """The registry people push to (host[:port])."""
    return str(settings.REGISTRY_HOST)


@login_required
def model_create(request: HttpRequest) -> HttpResponse:
    user = request.user
    assert isinstance(user, User)
    initial = {
        "default_hardware": Hardware.objects.filter(is_active=True).first(),
        "owner": request.GET.get("owner") or user.username,
    }
    form = ModelCreateForm(request.POST or None, owners=accounts_of(user), initial=initial)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            model = form.save()
            audit.record(
                "model.create",
                actor=user,
                account=model.owner,
                target=model,
                request=request,
                visibility=model.visibility,
                via="web",
            )
        return redirect("model-push", owner=model.owner.username, name=model.name)
    return render(request, "web/model_create.html", {"form": form})


@login_required
def model_edit(request: HttpRequest, owner: str, name: str) -> HttpResponse:
    model = describe([owned_model_for(request.user, owner, name)])[0]
    form = ModelEditForm(request.POST or None, request.FILES or None, instance=model)
    if request.method == "POST" and form.is_valid():
        changed = {
            name: form.cleaned_data.get(name)
            for name in form.changed_data
            if name not in ("tags", "cover_image")
        }
        with transaction.atomic():
            form.save()
            if set_tags(model, form.cleaned_data["tags"]):
                changed["tags"] = form.cleaned_data["tags"]
            if form.cleaned_data.get("cover_image"):
                store_cover(model, form.cleaned_data["cover_image"])
                changed["cover_image"] = True
            record_model_change(model, changed, request)
        return redirect("model", owner=model.owner.username, name=model.name)
    return render(
        request,
        "web/model_edit.html",
        {
            "form": form,
            "model": model,
            "tab": "edit",
            "is_owner": True,
            "trainable": trainable(model),
            "transfer_to": [a for a in accounts_of(request.user) if a.pk != model.owner_id],
        },
    )


@login_required
def model_push(request: HttpRequest, owner: str, name: str) -> HttpResponse:
    model = describe([owned_model_for(request.user, owner, name)])[0]
    host = registry_host()
    image = f"{host}/{model.full_name}"
    return render(
        request,
        "web/model_push.html",
        {
            "model": model,
            "tab": "push",
            "is_owner": True,
            "trainable": trainable(model),
            "host": host,
            "image": image,
            "username": request.user.get_username(),
            "refused_pushes": ImagePush.refused_since_last_version(model),
        },
    )
