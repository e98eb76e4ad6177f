from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "marketplace.registry"
    label = "registry"
    verbose_name = "Image registry"
