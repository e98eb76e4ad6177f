from django.apps import AppConfig


class DeploymentsConfig(AppConfig):
    name = "marketplace.deployments"
    label = "deployments"
