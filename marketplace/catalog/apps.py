from django.apps import AppConfig
from django.db.backends.signals import connection_created


def _sqlite_functions(sender: object, connection: object, **kwargs: object) -> None:
    """pg_trgm's word_similarity for search on SQLite (PostgreSQL has the extension)."""
    if getattr(connection, "vendor", "") == "sqlite":
        from marketplace.catalog.trigram import word_similarity

        connection.connection.create_function(  # type: ignore[attr-defined]
            "word_similarity", 2, word_similarity, deterministic=True
        )


class CatalogConfig(AppConfig):
    name = "marketplace.catalog"
    label = "catalog"

    def ready(self) -> None:
        from marketplace.catalog import signals  # noqa: F401  (connects receivers)

        connection_created.connect(_sqlite_functions)
