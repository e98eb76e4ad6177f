from django.apps import AppConfig


class FilesConfig(AppConfig):
    name = "marketplace.files"
    label = "files"

    def ready(self) -> None:
        from marketplace.files import receivers  # noqa: F401 - connects the signal receivers
