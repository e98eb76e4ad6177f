"""Shapes of the API's objects for the generated OpenAPI document (drf-spectacular).

The views build their JSON with each model's ``to_api()``; these serializers only describe it,
so the document and the frozen fixtures in tests/api/fixtures say the same thing.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers as s

JSON = s.JSONField


class Urls(s.Serializer):
    get = s.URLField()
    cancel = s.URLField()
    web = s.URLField()
    stream = s.URLField(required=False, help_text="Only for models with streaming output")


# The statuses of predictions and trainings (named once in the schema: ENUM_NAME_OVERRIDES).
STATUSES = ["starting", "processing", "succeeded", "failed", "canceled"]


class _RunOut(s.Serializer):
    """What predictions and trainings share."""

    id = s.CharField()
    input = JSON()
    logs = s.CharField(allow_null=True)
    error = s.CharField(allow_null=True)
    status = s.ChoiceField(STATUSES)
    data_removed = s.BooleanField()
    source = s.ChoiceField(["api", "web"])  # type: ignore[assignment]
    created_at = s.DateTimeField()
    started_at = s.DateTimeField(required=False)
    completed_at = s.DateTimeField(required=False)
    metrics = JSON(help_text="predict_time, total_time, queue_time, setup_time (seconds)")
    hardware = s.CharField(allow_null=True, help_text="Hardware SKU")
    webhook = s.URLField(required=False)
    webhook_events_filter = s.ListField(child=s.CharField(), required=False)


class PredictionOut(_RunOut):
    model = s.CharField(help_text="owner/name")
    version = s.CharField()
    output = JSON(allow_null=True)
    deadline = s.DateTimeField(required=False)
    cost = s.DecimalField(max_digits=14, decimal_places=6, allow_null=True, help_text="USD")
    urls = Urls()
    deployment = s.CharField(
        required=False, help_text="owner/name, when created through a deployment"
    )
    queue = JSON(
        required=False,
        help_text="Ours, while active: position (1-based, null once taken), estimated_start_at "
        "(null until the pool has run times), phase (queued, starting_instance, "
        "waiting_for_capacity, setup, running)",
    )


class TrainingUrls(s.Serializer):
    get = s.URLField()
    cancel = s.URLField()
    web = s.URLField()


class TrainingResult(s.Serializer):
    version = s.CharField(help_text="owner/name:<version id> of the trained version")
    weights = s.URLField(help_text="The trained weights (a signed, expiring URL)")


class TrainingOut(_RunOut):
    model = s.CharField(help_text="owner/name of the base model")
    version = s.CharField(help_text="The base version")
    destination = s.CharField(help_text="owner/name the trained version goes to")
    output = TrainingResult(allow_null=True)
    cost = s.DecimalField(
        max_digits=14, decimal_places=6, allow_null=True, help_text="USD, set when it ends"
    )
    urls = TrainingUrls()
    queue = JSON(required=False, help_text="As on predictions, while active")


class VersionOut(s.Serializer):
    id = s.CharField()
    created_at = s.DateTimeField()
    cog_version = s.CharField()
    openapi_schema = JSON()


class ModelOut(s.Serializer):
    url = s.URLField()
    owner = s.CharField()
    name = s.CharField()
    description = s.CharField(allow_null=True)
    visibility = s.ChoiceField(["public", "private"])
    github_url = s.URLField(allow_null=True)
    paper_url = s.URLField(allow_null=True)
    license_url = s.URLField(allow_null=True)
    run_count = s.IntegerField()
    cover_image_url = s.URLField(allow_null=True)
    default_example = PredictionOut(allow_null=True)
    latest_version = VersionOut(allow_null=True)
    tags = s.ListField(child=s.CharField(), help_text="ours")


class CollectionOut(s.Serializer):
    name = s.CharField()
    slug = s.CharField()
    description = s.CharField()
    full_description = s.CharField(required=False, allow_null=True)
    models = ModelOut(many=True, required=False)


class HardwareOut(s.Serializer):
    sku = s.CharField()
    name = s.CharField()


class AccountOut(s.Serializer):
    type = s.ChoiceField(["user", "organization"])
    username = s.CharField()
    name = s.CharField()
    github_url = s.URLField(allow_null=True)
    avatar_url = s.URLField()


class SecretOut(s.Serializer):
    key = s.CharField(help_text="whsec_…: verify webhook-signature with it")


class FileOut(s.Serializer):
    id = s.CharField()
    name = s.CharField()
    content_type = s.CharField()
    size = s.IntegerField()
    etag = s.CharField()
    checksums = JSON(help_text="sha256 and md5")
    metadata = JSON()
    created_at = s.DateTimeField()
    expires_at = s.DateTimeField()
    urls = JSON(help_text="get")


class FileIn(s.Serializer):
    content = s.FileField()
    filename = s.CharField(required=False)
    type = s.CharField(required=False)
    metadata = s.CharField(required=False, help_text="JSON object (form field or file part)")


class AttemptOut(s.Serializer):
    attempted_at = s.DateTimeField()
    response_status = s.IntegerField(allow_null=True)
    error = s.CharField(allow_null=True)
    duration_ms = s.IntegerField()


class DeliveryOut(s.Serializer):
    id = s.CharField(help_text="The webhook-id header")
    event = s.ChoiceField(["start", "output", "logs", "completed"])
    url = s.URLField()
    status = s.ChoiceField(["pending", "delivered", "failed"])
    created_at = s.DateTimeField()
    delivered_at = s.DateTimeField(allow_null=True)
    next_attempt_at = s.DateTimeField(allow_null=True)
    attempts = AttemptOut(many=True)


class DeliveryList(s.Serializer):
    results = DeliveryOut(many=True)


class SearchOut(s.Serializer):
    query = s.CharField()
    models = JSON()
    collections = JSON()
    pages = JSON()


class Problem(s.Serializer):
    title = s.CharField()
    detail = s.CharField()
    status = s.IntegerField()


def page_of(serializer: type[s.Serializer], name: str) -> Any:
    return type(
        name,
        (s.Serializer,),
        {
            "next": s.URLField(allow_null=True),
            "previous": s.URLField(allow_null=True),
            "results": serializer(many=True),
        },
    )


PredictionPage = page_of(PredictionOut, "PredictionPage")
TrainingPage = page_of(TrainingOut, "TrainingPage")
ModelPage = page_of(ModelOut, "ModelPage")
VersionPage = page_of(VersionOut, "VersionPage")
CollectionPage = page_of(CollectionOut, "CollectionPage")
FilePage = page_of(FileOut, "FilePage")

PREFER = OpenApiParameter(
    "Prefer", str, OpenApiParameter.HEADER, description="wait or wait=N (1-60): hold the request"
)
CANCEL_AFTER = OpenApiParameter(
    "Cancel-After",
    str,
    OpenApiParameter.HEADER,
    description="Cancel the prediction after this long, e.g. 90s, 5m, 1h30m (minimum 5 s)",
)
CURSOR = OpenApiParameter("cursor", str, description="From a page's next/previous URL")
NO_CONTENT = OpenApiResponse(description="Done")


class TokenScheme(OpenApiAuthenticationExtension):
    target_class = "marketplace.api.authentication.TokenAuthentication"
    name = "bearer"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "An API token (mkt_…)"}
