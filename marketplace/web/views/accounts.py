"""Sign-up, API tokens and the prediction history of the signed-in person."""

from __future__ import annotations

from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from marketplace import audit
from marketplace.accounts.models import ApiToken, signed_in
from marketplace.predictions.models import Prediction
from marketplace.web.forms import SignupForm, TokenForm

HISTORY_PAGE_SIZE = 50
NEW_TOKEN_KEY = "web:new-token"  # noqa: S105 - a session key name, not a secret


def signup(request: HttpRequest) -> HttpResponse:
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    if not url_has_allowed_host_and_scheme(next_url, {request.get_host()}):
        next_url = ""
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect(next_url or "tokens")
    return render(request, "registration/signup.html", {"form": form, "next": next_url})


@login_required
def tokens(request: HttpRequest) -> HttpResponse:
    user = signed_in(request.user)
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            token, raw_key = ApiToken.create_for(user, form.cleaned_data["name"])
            audit.record(
                "token.create",
                account=token.account or user.account,
                target=token,
                request=request,
                permission=token.permission,
            )
        # Shown by the next page once (post/redirect/get, so a reload cannot mint another); the
        # database keeps only a hash.
        request.session[NEW_TOKEN_KEY] = raw_key
        return redirect("tokens")
    response = render(
        request,
        "web/tokens.html",
        {
            "form": form,
            "created_key": request.session.pop(NEW_TOKEN_KEY, None),
            "tokens": user.api_tokens.order_by("-created_at"),
        },
    )
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    user = signed_in(request.user)
    token = get_object_or_404(ApiToken, pk=token_id, user=user)
    with transaction.atomic():
        audit.record(
            "token.revoke", account=token.account or user.account, target=token, request=request
        )
        token.delete()
    return redirect("tokens")


@login_required
def history(request: HttpRequest) -> HttpResponse:
    user = signed_in(request.user)
    predictions = (
        Prediction.objects.filter(account__user=user)
        .select_related("model__owner")
        .defer("input", "output", "logs")
        .order_by("-created_at")
    )
    status = request.GET.get("status", "")
    source = request.GET.get("source", "")
    model = request.GET.get("model", "").strip()
    if status in Prediction.Status.values:
        predictions = predictions.filter(status=status)
    if source in Prediction.Source.values:
        predictions = predictions.filter(source=source)
    if "/" in model:
        owner, _, name = model.partition("/")
        predictions = predictions.filter(model__owner__username__iexact=owner, model__name=name)
    page = Paginator(predictions, HISTORY_PAGE_SIZE).get_page(request.GET.get("page"))
    params = request.GET.copy()
    params.pop("page", None)
    return render(
        request,
        "web/history.html",
        {
            "page": page,
            "filters": {"status": status, "source": source, "model": model},
            "statuses": Prediction.Status.values,
            "sources": Prediction.Source.values,
            "querystring": params.urlencode(),
        },
    )
