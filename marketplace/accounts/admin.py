from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from marketplace.accounts.models import Account, ApiToken, Invitation, Membership, User

admin.site.register(User, UserAdmin)


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ("username", "type", "name", "created_at")
    search_fields = ("username", "name")


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = (
        "key_hint",
        "name",
        "user",
        "account",
        "permission",
        "expires_at",
        "created_at",
        "last_used_at",
    )
    readonly_fields = ("key_hash", "key_hint", "created_at", "last_used_at")
    search_fields = ("user__username", "name", "key_hint")

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        # Keys are shown once at creation; the admin could never show them, so it can't create.
        return False


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("account", "user", "role", "created_at")
    list_filter = ("role",)
    search_fields = ("account__username", "user__username")
    raw_id_fields = ("account", "user")


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ("account", "user", "email", "role", "state", "created_at", "answered_at")
    list_filter = ("state", "role")
    search_fields = ("account__username", "user__username", "email")
    raw_id_fields = ("account", "user", "invited_by")
