from django.apps import AppConfig


class EarningsConfig(AppConfig):
    name = "marketplace.earnings"
    default_auto_field = "django.db.models.BigAutoField"
