from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "marketplace.api"
    label = "api"

    def ready(self) -> None:
        # Registers the OpenAPI description of our token authentication.
        from marketplace import (
            hotcache,
            middleware,  # noqa: F401  (registers its system check)
        )
        from marketplace.api import openapi  # noqa: F401

        hotcache.connect_signals()
