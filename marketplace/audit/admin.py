from __future__ import annotations

from django.contrib import admin

from marketplace.audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: the log is append-only, written by ``audit.record`` alone."""

    list_display = ["created_at", "account", "actor", "action", "target_repr", "ip"]
    list_filter = ["action"]
    search_fields = ["account__username", "actor__username", "action", "target_repr", "target_id"]
    list_select_related = ["account", "actor"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False
