"""``/v1/billing/...``: a price quote for a version, and the caller's balance and spend."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from marketplace.accounts.models import signed_in
from marketplace.api.authentication import acting_account
from marketplace.api.errors import Problem
from marketplace.billing import pricing, services
from marketplace.catalog.models import Version


class QuoteApi(APIView):
    """``GET /v1/billing/quote?version=owner/name[:id]``: what one prediction costs at most."""

    @extend_schema(
        operation_id="billing.quote",
        parameters=[OpenApiParameter("version", str, required=True)],
        responses=inline_serializer(
            "Quote",
            {
                "version": serializers.CharField(),
                "model": serializers.CharField(),
                "currency": serializers.CharField(),
                "hardware": serializers.DictField(),
                "pricing": serializers.ChoiceField(
                    ["per_second", "per_prediction", "per_output_item"]
                ),
                "max_seconds": serializers.IntegerField(),
                "max_cost": serializers.DecimalField(max_digits=14, decimal_places=6),
                "unit_price": serializers.DecimalField(
                    max_digits=14, decimal_places=6, required=False
                ),
                "max_output_items": serializers.IntegerField(required=False),
                # Per-second pricing: the one price payers pay, and the creator's part of it.
                "price_per_second": serializers.DecimalField(
                    max_digits=14, decimal_places=8, required=False
                ),
                "creator_markup_per_second": serializers.DecimalField(
                    max_digits=14, decimal_places=8, required=False
                ),
            },
        ),
    )
    def get(self, request: Request) -> Response:
        ref = request.query_params.get("version", "").strip()
        if not ref:
            raise Problem(400, "version: required (an id, owner/name or owner/name:id)")
        version = Version.objects.visible_to(signed_in(request.user)).resolve(ref)
        if version is None:
            raise Problem(404, "The requested resource could not be found.")
        return Response(pricing.quote(version))


class BalanceApi(APIView):
    """``GET /v1/billing``: credit balance, reservations and this month's spend."""

    @extend_schema(
        operation_id="billing.get",
        responses=inline_serializer(
            "Billing",
            {
                "currency": serializers.CharField(),
                "mode": serializers.ChoiceField(["prepaid", "postpaid"]),
                **{
                    name: serializers.DecimalField(max_digits=14, decimal_places=6)
                    for name in ("credit_balance", "reserved", "available_credit", "month_spend")
                },
                "monthly_cap": serializers.DecimalField(
                    max_digits=14, decimal_places=6, allow_null=True
                ),
                "payment_blocked": serializers.BooleanField(),
            },
        ),
    )
    def get(self, request: Request) -> Response:
        account = acting_account(request)
        if not account.is_member(signed_in(request.user), "owner"):
            raise Problem(
                403, f"Only owners of {account.username} may see its billing", "Forbidden"
            )
        billing = services.billing_for(account)
        return Response(
            {
                "currency": "usd",
                "mode": billing.mode,
                "credit_balance": str(pricing.money(billing.credit_balance)),
                "reserved": str(pricing.money(services.reserved(billing))),
                "available_credit": str(pricing.money(services.available_credit(billing))),
                "month_spend": str(pricing.money(services.month_spend(billing))),
                "monthly_cap": None if billing.monthly_cap is None else str(billing.monthly_cap),
                "payment_blocked": bool(billing.payment_failed_invoice),
            }
        )
