from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from marketplace.accounts.models import Account, ApiToken, User

admin.site.register(User, UserAdmin)


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ("username", "type", "name", "created_at")
    search_fields = ("username", "name")


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("key_hint", "name", "user", "created_at", "last_used_at")
    readonly_fields = ("key_hash", "key_hint", "created_at", "last_used_at")
    search_fields = ("user__username", "name", "key_hint")

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        # Keys are shown once at creation; the admin could never show them, so it can't create.
        return False
