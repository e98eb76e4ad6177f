"""The earnings page (``/billing/earnings/``), Stripe Connect onboarding, and the monthly
statement. Only an account's owners see them; everyone else gets 404."""

from __future__ import annotations

import csv
import re
from datetime import date, timedelta
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_POST

from marketplace.accounts.models import Account, signed_in
from marketplace.billing import gateway, services
from marketplace.earnings import connect, ledger, payouts, reports
from marketplace.earnings.models import ConnectedAccount
from marketplace.web.access import accounts_of, chosen_account

STATEMENT_MONTHS = 6
_MONTH = re.compile(r"^(\d{4})-(\d{2})\Z")


def _account(request: HttpRequest) -> Account:
    """``?account=<org>`` (its owners only; 404 to anyone else), else the person's own."""
    return chosen_account(request.user, request.GET.get("account"), "owner")


def _url(account: Account, path: str = "", absolute: bool = False, **params: str) -> str:
    if account.is_organization:
        params = {"account": account.username, **params}
    url = f"/billing/earnings/{path}" + (f"?{urlencode(params)}" if params else "")
    return settings.PUBLIC_URL + url if absolute else url


def _months(count: int) -> list[date]:
    month = timezone.now().date().replace(day=1)
    out = []
    for _ in range(count):
        out.append(month)
        month = (month - timedelta(days=1)).replace(day=1)
    return out


@login_required
def earnings_page(request: HttpRequest) -> HttpResponse:
    user = signed_in(request.user)
    account = _account(request)
    context = {
        "account": account,
        "account_query": f"?account={account.username}" if account.is_organization else "",
        "switch_to": accounts_of(user, "owner"),
        "stripe_configured": services.stripe_configured(),
        "connected": ConnectedAccount.objects.filter(account=account).first(),
        "totals": reports.totals(account),
        "chart": reports.daily_chart(account),
        "models": reports.by_model(account),
        "payouts": account.payouts.all()[:24],
        "prices": reports.prices(account),
        "months": [
            (m, _url(account, "statement.csv", month=f"{m:%Y-%m}"))
            for m in _months(STATEMENT_MONTHS)
        ],
        "fee_percent": ledger.fee_percent(),
        "min_payout": payouts.min_payout_cents() / 100,
    }
    return render(request, "earnings/page.html", context)


def _to_stripe(request: HttpRequest, account: Account) -> HttpResponse:
    if not services.stripe_configured():
        messages.error(request, "Stripe is not configured on this site, so it cannot pay out.")
        return HttpResponseRedirect(_url(account))
    try:
        url = connect.onboarding_link(
            account,
            actor=signed_in(request.user),
            request=request,
            return_url=_url(account, absolute=True, connect="return"),
            refresh_url=_url(account, "connect/refresh", absolute=True),
        )
    except gateway.StripeError as exc:
        messages.error(request, f"Stripe could not be reached: {exc.user_message or exc}")
        return HttpResponseRedirect(_url(account))
    return HttpResponseRedirect(url)


@login_required
@require_POST
def connect_start(request: HttpRequest) -> HttpResponse:
    """Create the owner's Express account (first time) and send them to Stripe's onboarding."""
    return _to_stripe(request, _account(request))


@login_required
def connect_refresh(request: HttpRequest) -> HttpResponse:
    """Stripe's ``refresh_url``: an onboarding link expired or was used; make a new one."""
    account = _account(request)
    if not ConnectedAccount.objects.filter(account=account).exists():
        return HttpResponseRedirect(_url(account))
    return _to_stripe(request, account)


@login_required
@require_POST
def dashboard(request: HttpRequest) -> HttpResponse:
    account = _account(request)
    try:
        url = connect.dashboard_link(account) if services.stripe_configured() else None
    except gateway.StripeError as exc:
        messages.error(request, f"Stripe could not be reached: {exc.user_message or exc}")
        return HttpResponseRedirect(_url(account))
    if url is None:
        messages.error(request, "Finish connecting with Stripe first.")
        return HttpResponseRedirect(_url(account))
    return HttpResponseRedirect(url)


@login_required
def statement_csv(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    account = _account(request)
    raw = request.GET.get("month") or f"{timezone.now():%Y-%m}"
    match = _MONTH.match(raw)
    if match is None or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < 2000:
        return HttpResponse(
            "month: use YYYY-MM, e.g. 2026-01", status=400, content_type="text/plain"
        )
    start, end = reports.month_bounds(date(int(match.group(1)), int(match.group(2)), 1))

    class Echo:
        def write(self, value: str) -> str:
            return value

    writer = csv.writer(Echo())

    def rows():  # type: ignore[no-untyped-def]
        yield writer.writerow(reports.STATEMENT_HEADER)
        for row in reports.statement(account, start, end):
            yield writer.writerow(row)

    response = StreamingHttpResponse(rows(), content_type="text/csv")
    response["Content-Disposition"] = (
        f'attachment; filename="earnings-{account.username}-{raw}.csv"'
    )
    return response
