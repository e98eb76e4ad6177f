"""``GET /v1/earnings``: an owner's earnings, Connect status, payouts and prices."""

from __future__ import annotations

import re
from typing import Any

from django.db.models import Sum
from django.db.models.functions import Coalesce
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from marketplace.accounts.models import Account, User, signed_in
from marketplace.accounts.validators import NAMESPACE_RE
from marketplace.api.errors import Problem
from marketplace.earnings import ledger, payouts, reports
from marketplace.earnings.models import ConnectedAccount
from marketplace.isotime import iso

_NAME = re.compile(NAMESPACE_RE, re.IGNORECASE)
MAX_DAYS = 366


def earnings_account(user: User, name: str | None) -> Account:
    """The account asked for (default: the one the token acts for), if ``user`` is one of its
    owners or staff; raises LookupError otherwise (callers answer 404)."""
    if name and not _NAME.match(name):
        raise LookupError(name)
    account = Account.objects.filter(username__iexact=name).first() if name else user.account
    if account is None or not (account.is_member(user, "owner") or user.is_staff):
        raise LookupError(name)
    return account


def _money() -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=14, decimal_places=6)


def _connect(connected: ConnectedAccount | None) -> dict[str, Any]:
    if connected is None:
        return {"status": "not_connected"}
    return {
        "status": connected.status,
        "details_submitted": connected.details_submitted,
        "charges_enabled": connected.charges_enabled,
        "payouts_enabled": connected.payouts_enabled,
        "requirements_due": connected.requirements_due,
    }


class EarningsApi(APIView):
    @extend_schema(
        operation_id="earnings.get",
        summary="What the account earned from others' runs of its models",
        parameters=[
            OpenApiParameter("account", str, description="default: the token's account"),
            OpenApiParameter("days", int, description="days of by_day and by_model (30; ≤366)"),
        ],
        responses=inline_serializer(
            "Earnings",
            {
                "account": serializers.CharField(),
                "currency": serializers.CharField(),
                "platform_fee_percent": serializers.DecimalField(max_digits=5, decimal_places=2),
                "minimum_payout": serializers.DecimalField(max_digits=14, decimal_places=2),
                "connect": inline_serializer(
                    "EarningsConnect",
                    {
                        "status": serializers.ChoiceField(
                            ["not_connected", "onboarding", "restricted", "enabled"]
                        ),
                        "details_submitted": serializers.BooleanField(required=False),
                        "charges_enabled": serializers.BooleanField(required=False),
                        "payouts_enabled": serializers.BooleanField(required=False),
                        "requirements_due": serializers.ListField(
                            child=serializers.CharField(), required=False
                        ),
                    },
                ),
                "totals": inline_serializer(
                    "EarningsTotals",
                    {
                        name: _money()
                        for name in (
                            "pending",
                            "available",
                            "in_transit",
                            "paid",
                            "reversed",
                            "earned",
                        )
                    },
                ),
                "by_model": inline_serializer(
                    "EarningsByModel",
                    {
                        "model": serializers.CharField(),
                        "predictions": serializers.IntegerField(),
                        "charged": _money(),
                        "fees": _money(),
                        "earned": _money(),
                    },
                    many=True,
                ),
                "by_day": inline_serializer(
                    "EarningsByDay",
                    {
                        "date": serializers.DateField(),
                        "model": serializers.CharField(),
                        "earned": _money(),
                    },
                    many=True,
                ),
                "payouts": inline_serializer(
                    "EarningsPayout",
                    {
                        "id": serializers.IntegerField(),
                        "created_at": serializers.DateTimeField(),
                        "amount": serializers.DecimalField(max_digits=14, decimal_places=2),
                        "status": serializers.ChoiceField(["pending", "paid"]),
                        "reversed": serializers.DecimalField(max_digits=14, decimal_places=2),
                    },
                    many=True,
                ),
            },
        ),
    )
    def get(self, request: Request) -> Response:
        try:
            account = earnings_account(signed_in(request.user), request.query_params.get("account"))
        except LookupError as exc:
            raise Problem(404, "Account not found") from exc
        raw_days = request.query_params.get("days", "30")
        if not raw_days.isdigit() or not 1 <= int(raw_days) <= MAX_DAYS:
            raise Problem(400, f"days: a whole number of days from 1 to {MAX_DAYS}")
        days = int(raw_days)
        totals = reports.totals(account)
        recent = account.payouts.annotate(
            reversed_cents=Coalesce(Sum("reversals__amount_cents"), 0)
        )[:50]
        return Response(
            {
                "account": account.username,
                "currency": "usd",
                "platform_fee_percent": f"{ledger.fee_percent():.2f}",
                "minimum_payout": f"{payouts.min_payout_cents() / 100:.2f}",
                "connect": _connect(ConnectedAccount.objects.filter(account=account).first()),
                "totals": {name: str(value) for name, value in vars(totals).items()},
                "by_model": [
                    {**row, **{k: str(row[k]) for k in ("charged", "fees", "earned")}}
                    for row in reports.by_model(account, days)
                ],
                "by_day": [
                    {"date": day.isoformat(), "model": model, "earned": str(amount)}
                    for day, model, amount in reports.by_day(account, days)
                ],
                "payouts": [
                    {
                        "id": p.pk,
                        "created_at": iso(p.created_at),
                        "amount": f"{p.total:.2f}",
                        "status": p.status,
                        "reversed": f"{p.reversed_cents / 100:.2f}",  # type: ignore[attr-defined]
                    }
                    for p in recent
                ],
            }
        )
