from django.contrib import admin

from marketplace.registry.models import ImagePush


@admin.register(ImagePush)
class ImagePushAdmin(admin.ModelAdmin):
    list_display = (
        "repository", "tag", "digest", "outcome", "pushed_by", "created_at", "deleted_at"
    )  # fmt: skip
    list_filter = ("outcome",)
    search_fields = ("repository", "digest", "tag")
    readonly_fields = [f.name for f in ImagePush._meta.fields]
