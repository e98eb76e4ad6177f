from __future__ import annotations

from rest_framework import serializers

WEBHOOK_EVENTS = ("start", "output", "logs", "completed")


class ModelPredictionCreateInput(serializers.Serializer):
    """Body of ``POST /v1/models/{owner}/{name}/predictions``. Unknown keys
    (``webhook_completed``, ``stream``) are ignored, as the official Python client still sends
    them."""

    input = serializers.JSONField()
    webhook = serializers.URLField(required=False, allow_blank=True, max_length=2000)
    webhook_events_filter = serializers.ListField(
        child=serializers.ChoiceField(choices=WEBHOOK_EVENTS), required=False, allow_empty=True
    )
    # The body form of the Cancel-After header.
    lifetime = serializers.CharField(required=False, allow_blank=True, max_length=40)


class PredictionCreateInput(ModelPredictionCreateInput):
    """Body of ``POST /v1/predictions``."""

    version = serializers.CharField(max_length=300)
