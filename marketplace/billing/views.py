"""The billing page, its actions (Stripe redirects, caps), the CSV export and the webhook."""

from __future__ import annotations

import csv
from decimal import Decimal, InvalidOperation
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from marketplace import audit
from marketplace.accounts.models import Account, ApiToken, signed_in
from marketplace.billing import gateway, pricing, reports, services
from marketplace.billing.models import BillingAccount, TokenCap
from marketplace.billing.webhooks import event_receive
from marketplace.web.access import accounts_of, chosen_account

USAGE_ROWS = 100
CSV_MAX_DAYS = 366


def credit_amounts() -> list[int]:
    return [int(a) for a in settings.BILLING_CREDIT_AMOUNTS]


def _account(request: HttpRequest) -> Account:
    """The account the page is about: ``?account=<org>`` (its owners only; 404 to anyone else),
    else the person's own."""
    return chosen_account(request.user, request.GET.get("account"), "owner")


def _page_url(account: Account, status: str = "", absolute: bool = False) -> str:
    """The billing page of ``account`` (absolute for Stripe, which redirects back to it)."""
    params = {"account": account.username} if account.is_organization else {}
    if status:
        params["checkout"] = status
    path = "/billing/" + (f"?{urlencode(params)}" if params else "")
    return settings.PUBLIC_URL + path if absolute else path


@login_required
def billing_page(request: HttpRequest) -> HttpResponse:
    user = signed_in(request.user)
    account = _account(request)
    billing = services.billing_for(account)
    # Spend caps per token: the person's own tokens, or every member's tokens for the org.
    tokens = list(
        ApiToken.objects.filter(account=account)
        if account.is_organization
        else ApiToken.objects.filter(user=user, account__isnull=True)
    )
    tokens.sort(key=lambda t: t.created_at)
    caps = dict(TokenCap.objects.filter(token__in=tokens).values_list("token_id", "monthly_cap"))
    context = {
        "billing": billing,
        "stripe_configured": services.stripe_configured(),
        "reserved": pricing.money(services.reserved(billing)),
        "available": pricing.money(services.available_credit(billing)),
        "month_spend": pricing.money(services.month_spend(billing)),
        "month_start": services.month_start(),
        "chart": reports.daily_chart(billing),
        "usage": reports.entries_since(billing, 30)[:USAGE_ROWS],
        "runs": billing.runs.all()[:24],
        "grants": billing.grants.all()[:10],
        "tokens": [(t, caps.get(t.pk)) for t in tokens],
        "my_models": reports.usage_of_my_models(account),
        "credit_amounts": credit_amounts(),
        "account": account,
        "account_query": f"?account={account.username}" if account.is_organization else "",
        "switch_to": accounts_of(user, "owner"),
    }
    return render(request, "billing/page.html", context)


@login_required
def usage_csv(request: HttpRequest) -> StreamingHttpResponse:
    try:
        days = min(max(int(request.GET.get("days", 30)), 1), CSV_MAX_DAYS)
    except ValueError:
        days = 30
    billing = services.billing_for(_account(request))
    entries = reports.entries_since(billing, days).iterator()

    class Echo:
        def write(self, value: str) -> str:
            return value

    writer = csv.writer(Echo())
    header = [
        "completed_at",
        "prediction",
        "model",
        "version",
        "hardware",
        "status",
        "seconds",
        "price_per_second",
        "units",
        "unit_price",
        "amount_usd",
        "paid_from_credit_usd",
        "user",
        "kind",
    ]

    def rows():  # type: ignore[no-untyped-def]
        yield writer.writerow(header)
        for e in entries:
            yield writer.writerow(
                [
                    e.created_at.isoformat(),
                    e.prediction_id,
                    e.model.full_name,
                    e.version_id,
                    e.hardware.sku,
                    e.status,
                    e.seconds,
                    e.price_per_second,
                    e.units,
                    "" if e.unit_price is None else e.unit_price,
                    e.amount,
                    e.credit_applied,
                    e.user.username if e.user else "",
                    e.kind,
                ]
            )

    response = StreamingHttpResponse(rows(), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="usage-{days}d.csv"'
    return response


def _stripe_redirect(request: HttpRequest, make_url) -> HttpResponse:  # type: ignore[no-untyped-def]
    account = _account(request)
    if not services.stripe_configured():
        messages.error(request, "Stripe is not configured on this site.")
        return HttpResponseRedirect(_page_url(account))
    try:
        return HttpResponseRedirect(make_url(services.billing_for(account), account))
    except gateway.StripeError as exc:
        messages.error(request, f"Stripe could not be reached: {exc.user_message or exc}")
        return HttpResponseRedirect(_page_url(account))


@login_required
@require_POST
def card_setup(request: HttpRequest) -> HttpResponse:
    return _stripe_redirect(
        request,
        lambda b, a: gateway.setup_session(
            b, success_url=_page_url(a, "card", True), cancel_url=_page_url(a, absolute=True)
        ),
    )


@login_required
@require_POST
def credits_buy(request: HttpRequest) -> HttpResponse:
    try:
        amount = int(request.POST.get("amount", ""))
    except ValueError:
        amount = 0
    if amount not in credit_amounts():
        messages.error(request, f"amount: choose one of {', '.join(map(str, credit_amounts()))}")
        return HttpResponseRedirect(_page_url(_account(request)))
    return _stripe_redirect(
        request,
        lambda b, a: gateway.credit_session(
            b,
            amount_cents=amount * 100,
            success_url=_page_url(a, "credits", True),
            cancel_url=_page_url(a, absolute=True),
        ),
    )


@login_required
@require_POST
def portal(request: HttpRequest) -> HttpResponse:
    return _stripe_redirect(
        request, lambda b, a: gateway.portal_session(b, return_url=_page_url(a, absolute=True))
    )


def _cap(value: str | None, field: str) -> tuple[Decimal | None, str | None]:
    value = (value or "").strip()
    if not value:
        return None, None
    try:
        cap = Decimal(value)
    except InvalidOperation:
        return None, f"{field}: enter an amount in dollars, e.g. 25 or 12.50"
    if not cap.is_finite() or cap < 0 or cap > Decimal("99999999"):
        return None, f"{field}: enter an amount from 0 to 99999999"
    return cap.quantize(Decimal("0.01")), None


def _dollars(amount: Decimal | None) -> str | None:
    return None if amount is None else f"{amount:f}"


@login_required
@require_POST
def caps_update(request: HttpRequest) -> HttpResponse:
    user = signed_in(request.user)
    account = _account(request)
    account_cap, error = _cap(request.POST.get("monthly_cap"), "monthly_cap")
    errors = [error] if error else []
    token_caps = {}
    tokens = (
        ApiToken.objects.filter(account=account)
        if account.is_organization
        else ApiToken.objects.filter(user=user, account__isnull=True)
    )
    for token in tokens:
        name = f"token_cap_{token.pk}"
        if name in request.POST:
            cap, error = _cap(request.POST.get(name), name)
            if error:
                errors.append(error)
            token_caps[token] = cap
    if errors:
        for error in errors:
            messages.error(request, error)
        return HttpResponseRedirect(_page_url(account))
    old_caps = dict(
        TokenCap.objects.filter(token__in=list(token_caps)).values_list("token", "monthly_cap")
    )
    with transaction.atomic():
        old_cap = (
            BillingAccount.objects.filter(account=account)
            .values_list("monthly_cap", flat=True)
            .first()
        )
        services.caps_update(account, account_cap)
        if old_cap != account_cap:
            audit.record(
                "billing.monthly_cap",
                actor=user,
                account=account,
                request=request,
                monthly_cap=_dollars(account_cap),
                previous=_dollars(old_cap),
            )
        for token, cap in token_caps.items():
            services.token_cap_update(token, cap)
            if old_caps.get(token.pk) != cap:
                audit.record(
                    "billing.token_cap",
                    actor=user,
                    account=account,
                    target=token,
                    request=request,
                    monthly_cap=_dollars(cap),
                    previous=_dollars(old_caps.get(token.pk)),
                )
    messages.success(request, "Spend caps saved.")
    return HttpResponseRedirect(_page_url(account))


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    """Stripe's webhook: 400 unless signed with STRIPE_WEBHOOK_SECRET; 200 for everything else
    (new, duplicate or ignored), so Stripe stops retrying."""
    if not settings.STRIPE_WEBHOOK_SECRET:
        return HttpResponse("Stripe webhooks are not configured", status=400)
    try:
        _, created = event_receive(request.body, request.headers.get("Stripe-Signature", ""))
    except (gateway.SignatureError, ValueError, KeyError):
        return HttpResponse("Invalid signature or payload", status=400)
    return HttpResponse("ok" if created else "duplicate", status=200)
