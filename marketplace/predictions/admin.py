"""Operators' view of webhook deliveries: read-only records, and a redeliver action that goes
through the same service function as the owner's ``POST …/webhooks/{id}/redeliver``."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from marketplace.predictions.webhooks import WebhookAttempt, WebhookDelivery, redeliver


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    extra = 0
    can_delete = False
    fields = ("attempted_at", "response_status", "error", "duration_ms", "response_body")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = (
        "message_id",
        "prediction",
        "event",
        "status",
        "attempt_count",
        "created_at",
        "delivered_at",
        "next_attempt_at",
    )
    list_filter = ("status", "event")
    search_fields = ("message_id", "prediction__id", "url")
    list_select_related = ("prediction",)
    raw_id_fields = ("prediction",)
    readonly_fields = [f.name for f in WebhookDelivery._meta.fields]
    inlines = [WebhookAttemptInline]
    actions = ["redeliver_selected"]

    # Deliveries are records of what was sent: nobody adds or edits them by hand.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_redeliver_permission(self, request: HttpRequest) -> bool:
        # Sending again changes state: staff who may only view deliveries may not.
        return bool(request.user.has_perm("predictions.change_webhookdelivery"))

    @admin.action(
        description="Redeliver (one more attempt now, same webhook-id)",
        permissions=["redeliver"],
    )
    def redeliver_selected(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        count = 0
        for delivery in queryset:
            redeliver(delivery)
            count += 1
        self.message_user(
            request, f"{count} webhook deliver{'y' if count == 1 else 'ies'} queued again.",
            messages.SUCCESS,
        )  # fmt: skip
