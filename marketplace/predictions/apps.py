from django.apps import AppConfig


class PredictionsConfig(AppConfig):
    name = "marketplace.predictions"
    label = "predictions"
