"""The operator's views of creator earnings: the immutable ledger with what the platform kept
(fees collected), payouts, clawbacks and connected accounts. Nothing here moves money."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib import admin
from django.db.models import Count, QuerySet, Sum
from django.db.models.functions import Coalesce, TruncMonth
from django.http import HttpRequest, HttpResponse

from marketplace.earnings.ledger import collected
from marketplace.earnings.models import (
    ConnectedAccount,
    Earning,
    EarningReversal,
    Payout,
    TransferReversal,
)

ZERO = Decimal(0)


class ReadOnly(admin.ModelAdmin):
    """Rows written by the ledger and payout runs only."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def fee_summary(earnings: QuerySet[Earning]) -> list[dict[str, Any]]:
    """Per month: what payers were charged for earning runs, the owners' share, the fees, what
    owners earned, and the fees on earnings whose payers have paid (collected)."""
    rows = (
        earnings.annotate(month=TruncMonth("created_at"))
        .values("month")
        .annotate(
            predictions=Count("id"),
            charged=Sum("charged"),
            owner_share=Sum("owner_share"),
            fees=Sum("fee"),
            earned=Sum("amount"),
            fees_collected=Coalesce(Sum("fee", filter=collected()), ZERO),
        )
        .order_by("-month")
    )
    return [dict(row) for row in rows]


@admin.register(Earning)
class EarningAdmin(ReadOnly):
    list_display = ["created_at", "owner", "model", "charged", "owner_share", "fee", "amount"]
    list_filter = ["fee_percent", ("payout", admin.EmptyFieldListFilter)]
    search_fields = ["owner__username", "model__name", "usage__prediction__id"]
    date_hierarchy = "created_at"
    list_select_related = ["owner", "model__owner"]
    change_list_template = "admin/earnings/earning/change_list.html"

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None)
        if context and "cl" in context:
            queryset = context["cl"].queryset
            context["fee_months"] = fee_summary(queryset)
            context["fee_totals"] = queryset.aggregate(
                charged=Coalesce(Sum("charged"), ZERO),
                fees=Coalesce(Sum("fee"), ZERO),
                earned=Coalesce(Sum("amount"), ZERO),
                fees_collected=Coalesce(Sum("fee", filter=collected()), ZERO),
            )
            # Separately: a join on reversals would count each earning once per reversal.
            context["fee_totals"]["reversed"] = EarningReversal.objects.filter(
                earning__in=queryset
            ).aggregate(s=Coalesce(Sum("amount"), ZERO))["s"]
        return response


@admin.register(EarningReversal)
class EarningReversalAdmin(ReadOnly):
    list_display = ["created_at", "owner", "earning", "amount", "reason", "reference"]
    list_filter = ["reason"]
    search_fields = ["owner__username", "reference"]


class TransferReversalInline(admin.TabularInline):
    model = TransferReversal
    extra = 0
    can_delete = False
    readonly_fields = ["amount_cents", "stripe_reversal_id", "attempts", "last_error", "created_at"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Payout)
class PayoutAdmin(ReadOnly):
    list_display = [
        "created_at",
        "owner",
        "total",
        "status",
        "stripe_transfer_id",
        "stripe_amount_reversed",
        "attempts",
    ]
    list_filter = ["status", ("last_error", admin.EmptyFieldListFilter)]
    search_fields = ["owner__username", "stripe_transfer_id"]
    inlines = [TransferReversalInline]


@admin.register(ConnectedAccount)
class ConnectedAccountAdmin(ReadOnly):
    list_display = [
        "account",
        "stripe_account_id",
        "details_submitted",
        "payouts_enabled",
        "transfers_active",
        "synced_at",
    ]
    list_filter = ["payouts_enabled", "transfers_active"]
    search_fields = ["account__username", "stripe_account_id"]
