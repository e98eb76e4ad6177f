"""A model's pages: Playground (the schema-generated form), API, Versions, Examples; and Run."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from marketplace import audit
from marketplace.accounts.models import User
from marketplace.billing import pricing
from marketplace.catalog import formspec
from marketplace.catalog.models import Model, Version
from marketplace.deployments.transparency import timing_summary
from marketplace.files.access import Grants, prime
from marketplace.predictions.models import Prediction
from marketplace.predictions.refusals import CreateRefused
from marketplace.predictions.services import prediction_create
from marketplace.registry.models import ImagePush
from marketplace.rollups import totals as rollups
from marketplace.web import playground
from marketplace.web.access import (
    accounts_of,
    chosen_account,
    model_for,
    owned_model_for,
    prediction_for,
    trainable,
    versions_of,
)
from marketplace.web.forms import VersionPriceForm
from marketplace.web.rendering import describe, markdown_html, render_output

# A model page's queue/setup/run percentiles are recomputed at most this often (shared by every
# web process through marketplace.rollups).
TIMINGS_MAX_AGE = timedelta(minutes=1)


def _version(model: Model, version_id: str | None) -> Version | None:
    versions = versions_of(model)
    if version_id:
        version = versions.filter(pk=version_id).first()
        if version is None:
            raise Http404("No such version")
        return version
    return versions.first()


def _page(request: HttpRequest, model: Model, tab: str, **context: Any) -> HttpResponse:
    status = context.pop("status", 200)
    describe([model])
    context.update(
        model=model,
        tab=tab,
        is_owner=model.is_owned_by(request.user),
        run_as=accounts_of(request.user) if tab == "playground" else [],
        readme=markdown_html(model.readme) if tab == "playground" else "",
    )
    version = context.get("version")
    context.setdefault("trainable", trainable(model, version))
    if isinstance(version, Version) and version.markup_per_second:
        version.model = model  # the summary reads its hardware: no extra query
        context["price_line"] = pricing.price_summary(version)
    if tab == "playground" and context["is_owner"]:
        # Why a recent push did not become a version (e.g. an image without Cog labels).
        context["refused_pushes"] = ImagePush.refused_since_last_version(model)
    return render(request, f"web/model_{tab}.html", context, status=status)


def _playground(
    request: HttpRequest,
    model: Model,
    version: Version | None,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    **context: Any,
) -> HttpResponse:
    fields = formspec.input_fields(version.schema) if version else []
    bound = playground.bind(fields, values, errors)
    if version is not None:
        context["cost"] = cost_line(model, version)
        if version.trained_from_id or version.training_id:
            context["trained"] = trained_from(version, request.user)
    return _page(
        request,
        model,
        "playground",
        version=version,
        fields=bound,
        visible=[b for b in bound if not b.f.advanced],
        advanced=[b for b in bound if b.f.advanced],
        form_error=(errors or {}).get("__all__", ""),
        has_field_errors=any(b.error for b in bound),
        # Open when it hides something the person should see: an error or a value they chose.
        advanced_open=any(b.f.advanced and (b.error or b.f.name in (values or {})) for b in bound),
        **context,
    )


def model_page(request: HttpRequest, owner: str, name: str) -> HttpResponse:
    model = model_for(request.user, owner, name)
    version = _version(model, request.GET.get("version"))
    values = None
    tweaked = None
    if tweak_id := request.GET.get("tweak"):
        tweaked = prediction_for(request.user, tweak_id)
        if tweaked.model_id != model.pk:
            raise Http404("No such prediction")
        version = _version(model, tweaked.version_id)
        # As the prediction shows it: its account's files as signed URLs, which whoever tweaks
        # a featured example may run with while they last (a bare reference would be refused).
        shown = tweaked.to_api()["input"]
        values = shown if isinstance(shown, dict) else {}
    summary = rollups.recent(f"timings:{model.pk}", TIMINGS_MAX_AGE, lambda: timing_summary(model))
    timings = [
        ("Queue wait", summary["queue"]),
        ("Setup (cold start)", summary["setup"]),
        ("Run", summary["run"]),
    ]
    return _playground(request, model, version, values, tweaked=tweaked, timings=timings)


@login_required
@require_POST
def run(request: HttpRequest, owner: str, name: str) -> HttpResponse:
    """Create a prediction from the playground; invalid input re-renders the form with errors."""
    user = request.user
    assert isinstance(user, User)
    model = model_for(user, owner, name)
    # Who pays: the person, or an organisation they may write to (the playground's "Run as").
    account = chosen_account(user, request.POST.get("account"))
    version = _version(model, request.POST.get("version"))
    if version is None:
        raise Http404("This model has no version to run yet")
    fields = formspec.input_fields(version.schema)
    form = playground.posted(fields, request)
    errors = form.errors
    refused = playground.Refusal(errors)
    if not errors:
        try:
            prediction = prediction_create(
                version=version,
                input=form.payload,
                account=account,
                created_by=user,
                source=Prediction.Source.WEB,
                uploads_by_field=form.files,
            )
        except CreateRefused as exc:
            refused = playground.refusal(exc)
        else:
            return redirect("prediction", prediction_id=prediction.pk)
    values = playground.raw_values(fields, request.POST)
    return _playground(
        request,
        model,
        version,
        values,
        refused.errors,
        status=refused.status,
        payment_required=refused.payment_required,
    )


def cost_line(model: Model, version: Version) -> str:
    """What a run costs, from billing's quote: "$0.0001 per second on CPU · at most $0.18 per
    run" or "$0.01 per prediction" (a flat price replaces hardware time)."""
    version.model = model  # already loaded with its hardware: no extra queries
    quote = pricing.quote(version)
    line = pricing.price_summary(version)
    if quote["pricing"] != "per_prediction":
        line += f" · at most ${_dollars(quote['max_cost'])} per run"
    return line


def _dollars(amount: str) -> str:
    whole, _, fraction = format(Decimal(amount).normalize(), "f").partition(".")
    return f"{whole}.{fraction.ljust(2, '0')}"


def model_api(request: HttpRequest, owner: str, name: str) -> HttpResponse:
    model = model_for(request.user, owner, name)
    version = _version(model, request.GET.get("version"))
    example = playground.example_input(formspec.input_fields(version.schema)) if version else {}
    return _page(
        request,
        model,
        "api",
        version=version,
        public_url=settings.PUBLIC_URL,
        example_json=json.dumps(example, indent=2),
        example_python=_python_literal(example),
        cost=cost_line(model, version) if version else "",
    )


def _python_literal(value: dict[str, Any]) -> str:
    lines = [f"        {json.dumps(k)}: {_py(v)}," for k, v in value.items()]
    return "{\n" + "\n".join(lines) + "\n    }" if lines else "{}"


def _py(value: Any) -> str:
    # JSON literals differ from Python's only in true/false/null at the top level of these inputs.
    if isinstance(value, bool) or value is None:
        return repr(value)
    return json.dumps(value)


def model_versions(request: HttpRequest, owner: str, name: str) -> HttpResponse:
    return _versions_page(request, model_for(request.user, owner, name))


def _versions_page(
    request: HttpRequest, model: Model, failed: VersionPriceForm | None = None, status: int = 200
) -> HttpResponse:
    versions = list(
        versions_of(model).select_related("trained_from__model__owner", "training__account")[:50]
    )
    is_owner = model.is_owned_by(request.user)
    rows = []
    for newer, older in zip(versions, [*versions[1:], None], strict=True):
        newer.model = model
        row: dict[str, Any] = {
            "version": newer,
            "changes": _schema_changes(older, newer),
            "price": pricing.price_summary(newer),
            "trained": trained_from(newer, request.user),
        }
        if is_owner:
            # The form that failed keeps what was typed and its errors; the others show prices.
            row["price_form"] = (
                failed
                if failed is not None and failed.version.pk == newer.pk
                else VersionPriceForm(version=newer)
            )
        rows.append(row)
    return _page(request, model, "versions", rows=rows, price_error=failed, status=status)


@login_required
@require_POST
def version_price(request: HttpRequest, owner: str, name: str, version_id: str) -> HttpResponse:
    """The owner sets or clears a version's flat price (per prediction or per output item) or
    its markup per second."""
    model = owned_model_for(request.user, owner, name)
    version = versions_of(model).filter(pk=version_id).first()
    if version is None:
        raise Http404("No such version")
    version.model = model
    form = VersionPriceForm(request.POST, version=version)
    if not form.is_valid():
        return _versions_page(request, model, failed=form, status=422)
    with transaction.atomic():
        form.save()
        audit.record(
            "version.price",
            account=model.owner,
            target=version,
            request=request,
            unit_price=None if version.unit_price is None else f"{version.unit_price:f}",
            price_unit=version.price_unit,
            markup_per_second=f"{version.markup_per_second:f}",
        )
    url = reverse("model-versions", kwargs={"owner": model.owner.username, "name": model.name})
    return redirect(f"{url}#v-{version.pk[:12]}")


def trained_from(version: Version, viewer: Any) -> dict[str, Any] | None:
    """What a trained version was trained from and with which inputs, as its model's pages show
    it to whoever sees the model: the base version (linked when the viewer sees its model), the
    training (linked for its account's members), and the inputs - secrets redacted, files by
    their names only (they are the training account's, not the model's viewers')."""
    base = version.trained_from
    training = version.training
    if base is None and training is None:
        return None
    out: dict[str, Any] = {"base": None, "training": None, "inputs": []}
    if base is not None:
        base_model = base.model
        out["base"] = {
            "name": f"{base_model.full_name}:{base.pk[:12]}",
            "url": reverse("model", args=[base_model.owner.username, base_model.name])
            + f"?version={base.pk}"
            if base_model.is_visible_to(viewer)
            else "",
        }
    if training is not None:
        out["training"] = {
            "id": training.pk,
            "url": reverse("prediction", args=[training.pk])
            if training.account.is_member(viewer)
            else "",
        }
        given = training.input if isinstance(training.input, dict) else {}
        schema = base.train_schema if base is not None else version.train_schema
        for f in formspec.input_fields(schema):
            if f.name not in given:
                continue
            value = given[f.name]
            if f.secret:
                text = "redacted"
            elif f.widget in (formspec.FILE, formspec.FILES):
                items = value if isinstance(value, list) else [value]
                text = ", ".join(_file_name(item) for item in items)
            else:
                text = formspec.value_text(f, value)
            out["inputs"].append((f.label, text))
    return out


def _file_name(value: Any) -> str:
    """A file input as the public may see it: the last part of its path, not its URL."""
    if not isinstance(value, str):
        return "a file"
    if value.startswith("data:"):
        return "an inline file"
    return value.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1][:120] or "a file"


def _schema_changes(older: Version | None, newer: Version) -> list[str]:
    """What changed in the Input schema from ``older`` to ``newer``, as short sentences."""
    if older is None:
        return []
    before = {f.name: f for f in formspec.input_fields(older.schema)}
    after = {f.name: f for f in formspec.input_fields(newer.schema)}
    changes = [f"added input {n}" for n in after if n not in before]
    changes += [f"removed input {n}" for n in before if n not in after]
    for name in after.keys() & before.keys():
        old, new = before[name], after[name]
        for attr in ("type", "required", "default", "choices", "minimum", "maximum"):
            if getattr(old, attr) != getattr(new, attr):
                changes.append(f"{name}: {attr} {getattr(old, attr)!r} → {getattr(new, attr)!r}")
    return sorted(changes)


def model_examples(request: HttpRequest, owner: str, name: str) -> HttpResponse:
    model = model_for(request.user, owner, name)
    examples = list(
        Prediction.objects.filter(
            model=model, is_example=True, status=Prediction.Status.SUCCEEDED
        ).select_related("version")[:24]
    )
    prime(examples)
    items = [
        {
            "prediction": p,
            "output": render_output(
                Grants.of(p).sign_output(p.output), formspec.output_spec(p.version.schema)
            ),
        }
        for p in examples
    ]
    return _page(request, model, "examples", examples=items)
