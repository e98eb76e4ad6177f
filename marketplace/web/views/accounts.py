"""Sign-up, API tokens and the prediction history of the signed-in person; avatars."""

from __future__ import annotations

import hashlib

from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from marketplace import audit
from marketplace.accounts.models import Account, ApiToken, member_accounts, signed_in
from marketplace.predictions.models import Prediction
from marketplace.web.access import accounts_of
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
    form = TokenForm(request.POST or None, accounts=accounts_of(user, "read_only"))
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        with transaction.atomic():
            token, raw_key = ApiToken.create_for(
                user,
                data["name"],
                account=data["scope"],
                permission=data["permission"],
                expires_at=data["expires_on"],
            )
            audit.record(
                "token.create",
                actor=user,
                account=data["scope"],
                target=token,
                request=request,
                permission=token.permission,
                expires_at=token.expires_at.isoformat() if token.expires_at else None,
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
            "tokens": user.api_tokens.select_related("account").order_by("-created_at"),
            "now": timezone.now(),
        },
    )
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    token = get_object_or_404(ApiToken, pk=token_id, user=signed_in(request.user))
    with transaction.atomic():
        audit.record(
            "token.revoke",
            actor=request.user,
            account=token.account or signed_in(request.user).personal_account,
            target=token,
            request=request,
        )
        token.delete()
    return redirect("tokens")


@login_required
def history(request: HttpRequest) -> HttpResponse:
    user = signed_in(request.user)
    predictions = (
        Prediction.objects.filter(account__in=member_accounts(user))
        .select_related("model__owner", "account", "created_by", "destination__owner")
        .defer("input", "output", "logs")
        .order_by("-created_at")
    )
    status = request.GET.get("status", "")
    source = request.GET.get("source", "")
    kind = request.GET.get("kind", "")
    if kind in Prediction.Kind.values:
        predictions = predictions.filter(kind=kind)
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
            "filters": {"status": status, "source": source, "model": model, "kind": kind},
            "kinds": Prediction.Kind.values,
            "statuses": Prediction.Status.values,
            "sources": Prediction.Source.values,
            "querystring": params.urlencode(),
        },
    )


AVATAR_COLOURS = ("#3b5bdb", "#0c8599", "#2b8a3e", "#e67700", "#c2255c", "#6741d9", "#495057")


def avatar(request: HttpRequest, username: str) -> HttpResponse:
    """An account's avatar (``avatar_url`` in the API): its initial on a colour of its own.
    Accounts are public (their profiles are), so this is too; no such account is 404."""
    account = Account.objects.filter(username__iexact=username).first()
    if account is None:
        raise Http404("No such account")
    colour = AVATAR_COLOURS[int(hashlib.sha256(account.username.encode()).hexdigest(), 16) % 7]
    svg = format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" width="96" height="96" viewBox="0 0 96 96">'
        '<rect width="96" height="96" rx="16" fill="{}"/><text x="48" y="64" font-size="48" '
        'font-family="sans-serif" text-anchor="middle" fill="#fff">{}</text></svg>',
        colour,
        account.username[:1].upper(),
    )
    response = HttpResponse(svg, content_type="image/svg+xml")
    response["Cache-Control"] = "public, max-age=86400"
    response["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    return response
