"""A trainable model's Train tab: a form generated from the version's ``TrainingInput`` (the
playground's widgets and uploads), a destination picker among the models the person may write
(or a new one), and who pays; submitting creates the training through the one create path."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_http_methods

from marketplace.accounts.models import AnyUser, User
from marketplace.catalog import formspec
from marketplace.catalog.models import Model, Version
from marketplace.predictions.models import Prediction
from marketplace.predictions.refusals import CreateRefused, NotTrainable
from marketplace.predictions.services import prediction_create
from marketplace.predictions.trainings import writable_models
from marketplace.web import playground
from marketplace.web.access import accounts_of, chosen_account, model_for, prediction_for
from marketplace.web.views.models import _page, _python_literal, _version

NEW_MODEL = ""  # the picker's value for "a new model"


def _destinations(user: AnyUser) -> list[Model]:
    if user is None or not user.is_authenticated:
        return []
    return list(writable_models(user).order_by("owner__username", "name"))


def _train_page(
    request: HttpRequest,
    model: Model,
    version: Version,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    *,
    picked: dict[str, str] | None = None,
    status: int = 200,
    **context: Any,
) -> HttpResponse:
    fields = formspec.input_fields(version.train_schema)
    bound = playground.bind(fields, values, errors)
    errors = errors or {}
    user = request.user
    personal = user.get_username() if user.is_authenticated else ""
    picked = picked or {}
    hardware = model.default_hardware
    return _page(
        request,
        model,
        "train",
        status=status,
        version=version,
        fields=bound,
        visible=[b for b in bound if not b.f.advanced],
        advanced=[b for b in bound if b.f.advanced],
        advanced_open=any(b.f.advanced and (b.error or b.f.name in (values or {})) for b in bound),
        form_error=errors.get("__all__", ""),
        has_field_errors=any(b.error for b in bound) or "destination" in errors,
        destination_error=errors.get("destination", ""),
        destinations=_destinations(user),
        owners=accounts_of(user),
        run_as=accounts_of(user),
        picked={
            "destination": picked.get("destination", NEW_MODEL),
            "new_owner": picked.get("new_owner", personal),
            "new_name": picked.get("new_name", f"{model.name}-trained"),
            "account": picked.get("account", personal),
        },
        example_python=_python_literal(playground.example_input(fields)),
        price_per_second=hardware.price_per_second,
        hardware=hardware,
        **context,
    )


@require_http_methods(["GET", "HEAD", "POST"])
def model_train(request: HttpRequest, owner: str, name: str) -> HttpResponse:
    """GET: the Train tab. POST (signed in): create the training and go to its live page."""
    model = model_for(request.user, owner, name)
    if request.method == "POST":
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        return _create(request, model)
    version = _version(model, request.GET.get("version"))
    values = None
    picked: dict[str, str] = {}
    tweaked = None
    if tweak_id := request.GET.get("tweak"):
        tweaked = prediction_for(request.user, tweak_id)
        if tweaked.model_id != model.pk or not tweaked.is_training:
            raise Http404("No such training")
        version = _version(model, tweaked.version_id)
        shown = tweaked.to_api()["input"]
        values = shown if isinstance(shown, dict) else {}
        if tweaked.destination is not None and tweaked.destination.owner.can_write(request.user):
            picked["destination"] = tweaked.destination.full_name
    if version is None or not version.is_trainable:
        raise Http404("This model cannot be trained")
    return _train_page(request, model, version, values, picked=picked, tweaked=tweaked)


def _create(request: HttpRequest, model: Model) -> HttpResponse:
    user = request.user
    assert isinstance(user, User)
    version = _version(model, request.POST.get("version"))
    if version is None or not version.is_trainable:
        raise Http404("This model cannot be trained")
    # Who pays: the person, or an organisation they may write to (as the playground's "Run as").
    account = chosen_account(user, request.POST.get("account"))
    picked = {
        key: request.POST.get(key, "").strip()
        for key in ("destination", "new_owner", "new_name", "account")
    }
    fields = formspec.input_fields(version.train_schema)
    form = playground.posted(fields, request)
    errors = form.errors
    destination = picked["destination"]
    if destination == NEW_MODEL:
        if not picked["new_name"]:
            errors["destination"] = "Name the new model, or pick one of yours."
        destination = f"{picked['new_owner'] or user.username}/{picked['new_name']}"
    refused = playground.Refusal(errors)
    if not errors:
        try:
            training = prediction_create(
                version=version,
                input=form.payload,
                account=account,
                created_by=user,
                source=Prediction.Source.WEB,
                uploads_by_field=form.files,
                destination=destination,
            )
        except NotTrainable as exc:
            raise Http404(str(exc)) from exc
        except CreateRefused as exc:
            refused = playground.refusal(exc)
        else:
            return redirect("prediction", prediction_id=training.pk)
    values = playground.raw_values(fields, request.POST)
    return _train_page(
        request,
        model,
        version,
        values,
        refused.errors,
        picked=picked,
        status=refused.status,
        payment_required=refused.payment_required,
    )
