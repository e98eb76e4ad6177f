from __future__ import annotations

from django.contrib import admin
from django.db import transaction

from marketplace import audit
from marketplace.billing.models import (
    BillingAccount,
    CreditGrant,
    InvoiceLine,
    InvoiceRun,
    StripeEvent,
    TokenCap,
    UsageEntry,
)


@admin.register(BillingAccount)
class BillingAccountAdmin(admin.ModelAdmin):
    list_display = ["account", "mode", "credit_balance", "monthly_cap", "has_payment_method"]
    list_filter = ["mode", "has_payment_method"]
    search_fields = ["account__username", "stripe_customer_id"]
    # Balances move only through grants and settlements (both locked and recorded).
    readonly_fields = ["account", "credit_balance", "stripe_customer_id", "created_at"]

    def save_model(self, request, obj, form, change):  # type: ignore[no-untyped-def]
        """Staff changes of billing settings (mode, cap, ...) go to the account's audit log."""
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            if change and form.changed_data:
                audit.record(
                    "billing.settings",
                    account=obj.account,
                    target=obj,
                    request=request,
                    via="admin",
                    changes={n: str(form.cleaned_data.get(n)) for n in form.changed_data},
                )


@admin.register(UsageEntry)
class UsageEntryAdmin(admin.ModelAdmin):
    list_display = [
        "prediction",
        "kind",
        "billing",
        "model",
        "hardware",
        "seconds",
        "amount",
        "created_at",
    ]
    list_filter = ["kind", "hardware", "status"]
    search_fields = ["prediction__id", "billing__account__username"]

    # The ledger is immutable.
    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False


@admin.register(CreditGrant)
class CreditGrantAdmin(admin.ModelAdmin):
    list_display = ["billing", "amount", "source", "reference", "created_at"]
    search_fields = ["billing__account__username", "reference"]

    # Use `manage.py grant_credits`, which moves the balance in the same transaction.
    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


class InvoiceLineInline(admin.TabularInline):
    model = InvoiceLine
    extra = 0
    can_delete = False
    readonly_fields = ["description", "seconds", "predictions", "amount_cents"]


@admin.register(InvoiceRun)
class InvoiceRunAdmin(admin.ModelAdmin):
    list_display = ["billing", "period_start", "period_end", "total_cents", "status"]
    list_filter = ["status"]
    inlines = [InvoiceLineInline]


admin.site.register(TokenCap)


@admin.register(StripeEvent)
class StripeEventAdmin(admin.ModelAdmin):
    list_display = ["id", "type", "received_at", "processed_at", "attempts"]
    list_filter = ["type"]
