"""The MCP tools: each one's input schema, and what it does, through the functions ``/v1`` uses.

Every tool stands for a ``/v1`` call and is held to the same rules: a read token may use only
the tools that read (``method`` is the HTTP method of that call, for
``authentication.check_token_permission``); the two that create predictions count against
``API_RATE_LIMIT_CREATE``, the others against ``API_RATE_LIMIT`` (``throttles``); predictions
come to exist only through ``services.prediction_create``, so validation, file and URL checks,
spend caps and credit apply unchanged. These functions are synchronous (the ORM); the server
calls them through ``sync_to_async``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import mcp_types as types
from django.conf import settings
from django.core.files.base import ContentFile
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from marketplace import netguard
from marketplace.accounts.models import ApiToken, User
from marketplace.api.authentication import account_of
from marketplace.api.errors import Problem, invalid
from marketplace.billing import pricing
from marketplace.catalog import search
from marketplace.catalog.models import Hardware, Model, Version
from marketplace.catalog.schema import components
from marketplace.catalog.serializers import hardware_to_api, model_to_api, models_to_api
from marketplace.files.access import prime
from marketplace.mcp.results import answer, prediction_lead
from marketplace.predictions.api import (
    prediction_of,
    predictions_of,
    version_to_run,
)
from marketplace.predictions.files_api import file_create, file_too_large
from marketplace.predictions.models import Prediction
from marketplace.predictions.serializers import WEBHOOK_EVENTS, ModelPredictionCreateInput
from marketplace.predictions.services import prediction_cancel, prediction_create
from marketplace.predictions.waiting import MAX_WAIT_SECONDS, api_body

NOT_FOUND = "The requested resource could not be found."


@dataclass(frozen=True)
class Caller:
    """Who calls: the token's user (``api_token`` set, so every access check sees the token's
    account only) and the token."""

    user: User
    token: ApiToken


@dataclass(frozen=True)
class Tool:
    name: str
    title: str
    description: str
    input_schema: dict[str, Any]
    # The HTTP method of the /v1 call the tool stands for (read tokens: GET only).
    method: str
    # Which rate limit it counts against: "api" or "create".
    throttle: str
    run: Callable[[Caller, dict[str, Any]], types.CallToolResult]

    def as_mcp(self) -> types.Tool:
        reads = self.method == "GET"
        return types.Tool(
            name=self.name,
            title=self.title,
            description=self.description,
            input_schema=self.input_schema,
            annotations=types.ToolAnnotations(
                title=self.title,
                read_only_hint=reads,
                destructive_hint=False if reads else self.name == "cancel_prediction",
                idempotent_hint=reads,
                open_world_hint=False,
            ),
        )


def _object(properties: dict[str, Any], *required: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


MODEL = {
    "type": "string",
    "minLength": 3,
    "maxLength": 300,
    "description": "The model as owner/name (its latest version), owner/name:version_id, or a "
    "version id.",
}
MODEL_NAME = {
    "type": "string",
    "pattern": r"^[^/:\s]+/[^/:\s]+(:[0-9a-f]{1,64})?$",
    "maxLength": 300,
    "description": "The model as owner/name, or owner/name:version_id for one version.",
}
INPUT = {
    "type": "object",
    "description": "The model's input: an object exactly as the model's input schema (see "
    "get_model) describes it. Files are URLs: upload_file's urls.get, or any https URL.",
}
WEBHOOK = {
    "type": "string",
    "format": "uri",
    "maxLength": 2000,
    "description": "An HTTPS URL to POST the prediction to as it changes (optional).",
}
WEBHOOK_FILTER = {
    "type": "array",
    "items": {"type": "string", "enum": list(WEBHOOK_EVENTS)},
    "uniqueItems": True,
    "description": "Which changes the webhook hears about (default: all).",
}
PREDICTION_ID = {
    "type": "string",
    "pattern": "^[a-z0-9]{1,64}$",
    "description": "The prediction's id.",
}
WAIT = {
    "type": "integer",
    "minimum": 1,
    "maximum": MAX_WAIT_SECONDS,
    "default": 30,
    "description": "How many seconds to wait for the prediction to finish. When it runs longer "
    "the answer is the prediction as it stands, with its id for get_prediction.",
}


# --- Models ----------------------------------------------------------------------------------


def search_models(caller: Caller, args: dict[str, Any]) -> types.CallToolResult:
    text = args["query"].strip()
    if "\x00" in text:
        raise invalid("query", "the search text contains a NUL character (\\u0000)")
    visible = Model.objects.visible_to(caller.user).select_related("owner")
    found = list(search.ranked(visible, text)[: args.get("limit", 10)])
    models = [
        {
            "model": m.full_name,
            "description": m.description or None,
            "url": m.url,
            "visibility": m.visibility,
            "run_count": m.run_count,
            "tags": body["tags"],
            "latest_version": (body["latest_version"] or {}).get("id"),
            "score": round(m.search_score, 6),  # type: ignore[attr-defined]
        }
        for m, body in zip(found, models_to_api(found), strict=True)
    ]
    return answer({"query": text, "models": models})


def _model(caller: Caller, ref: str) -> tuple[Model, Version | None]:
    """The model ``owner/name[:version]`` names if the caller may see it (404 otherwise), and
    that version or its latest."""
    name, _, version_id = ref.partition(":")
    owner, _, model_name = name.partition("/")
    model = Model.objects.visible_to(caller.user).select_related("owner").named(owner, model_name)
    if model is None:
        raise Problem(404, NOT_FOUND)
    versions = Version.objects.select_related("model__owner", "model__default_hardware")
    if version_id:
        version = versions.filter(model=model, pk=version_id).first()
        if version is None:
            raise Problem(404, NOT_FOUND)
        return model, version
    return model, versions.latest_of(model)


def model_document(model: Model, version: Version | None) -> dict[str, Any]:
    """The model as ``GET /v1/models/{owner}/{name}`` shows it, with its README, its versions,
    the input and output schema of ``version`` exactly as the model declares them, and its
    price (``GET /v1/billing/quote``). The tool and the resource answer this."""
    body = model_to_api(model)
    body.pop("default_example", None)
    if body.get("latest_version"):
        body["latest_version"].pop("openapi_schema", None)
    schemas = components(version.schema) if version is not None else {}
    body.update(
        {
            "readme": model.readme or None,
            "versions": [
                {"id": v.id, "created_at": v.created_at.isoformat(), "cog_version": v.cog_version}
                for v in model.versions.filter(hidden=False).order_by("-created_at")[:20]
            ],
            "version": version.id if version is not None else None,
            "input_schema": schemas.get("Input"),
            "output_schema": schemas.get("Output"),
            "quote": pricing.quote(version) if version is not None else None,
        }
    )
    return body


def get_model(caller: Caller, args: dict[str, Any]) -> types.CallToolResult:
    return answer(model_document(*_model(caller, args["model"])))


def list_hardware(caller: Caller, args: dict[str, Any]) -> types.CallToolResult:
    hardware = Hardware.objects.filter(is_active=True).order_by("price_per_second", "sku")
    return answer({"hardware": [hardware_to_api(h) for h in hardware]})


# --- Predictions -----------------------------------------------------------------------------


def create(caller: Caller, args: dict[str, Any]) -> Prediction:
    """The one create path, as ``POST /v1/predictions`` calls it."""
    body = ModelPredictionCreateInput(
        data={k: args[k] for k in ("input", "webhook", "webhook_events_filter") if k in args}
    )
    body.is_valid(raise_exception=True)
    data = body.validated_data
    version = version_to_run(caller.user, args["model"])
    return prediction_create(
        version=version,
        input=data["input"],
        account=account_of(caller.user, write=True),
        created_by=caller.user,
        created_by_token=caller.token,
        webhook=data.get("webhook") or "",
        webhook_events_filter=data.get("webhook_events_filter"),
    )


def create_prediction(caller: Caller, args: dict[str, Any]) -> types.CallToolResult:
    prediction = create(caller, args)
    body = api_body(prediction)
    return answer(body, lead=prediction_lead(prediction, body))


def prediction_answer(caller: Caller, prediction_id: str) -> types.CallToolResult:
    prediction = prediction_of(caller.user, prediction_id)
    body = api_body(prediction)
    return answer(body, lead=prediction_lead(prediction, body))


def get_prediction(caller: Caller, args: dict[str, Any]) -> types.CallToolResult:
    return prediction_answer(caller, args["id"])


def list_predictions(caller: Caller, args: dict[str, Any]) -> types.CallToolResult:
    predictions = predictions_of(caller.user)
    if before := args.get("before"):
        when = parse_datetime(before)
        if when is None:
            raise Problem(400, "before must be an ISO 8601 date-time", "Invalid before")
        if timezone.is_naive(when):
            when = timezone.make_aware(when, UTC)
        predictions = predictions.filter(created_at__lt=when)
    if status := args.get("status"):
        predictions = predictions.filter(status=status)
    limit = args.get("limit", 20)
    page = list(predictions[:limit])
    prime(page)
    results = [api_body(p) for p in page]
    more = len(page) == limit
    return answer({"results": results, "next_before": results[-1]["created_at"] if more else None})


def cancel_prediction(caller: Caller, args: dict[str, Any]) -> types.CallToolResult:
    prediction = prediction_of(caller.user, args["id"])
    account_of(caller.user, write=True)
    prediction = prediction_cancel(prediction)
    body = prediction.to_api()
    return answer(body, lead=prediction_lead(prediction, body))


# --- Files -----------------------------------------------------------------------------------


def upload_file(caller: Caller, args: dict[str, Any]) -> types.CallToolResult:
    name = args["filename"]
    if len(name.encode()) > 255:
        raise Problem(400, "- filename: must be at most 255 bytes\n", "Invalid request")
    encoded, url = args.get("content_base64"), args.get("url")
    if (encoded is None) == (url is None):
        raise invalid("content_base64", "give the content as base64 or a url, not both")
    limit = int(settings.FILES_MAX_BYTES)
    content_type = args.get("content_type", "")
    if encoded is not None:
        if len(encoded) > (limit + 2) // 3 * 4 + 4:
            raise file_too_large()
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise invalid("content_base64", "is not valid base64") from None
    else:
        try:
            data, fetched_type = netguard.fetch(str(url), max_bytes=limit)
        except netguard.TooLarge:
            raise file_too_large() from None
        except netguard.Refused as exc:
            raise invalid("url", str(exc)) from None
        content_type = content_type or fetched_type
    if len(data) > limit:
        raise file_too_large()
    uploaded = file_create(
        account=account_of(caller.user, write=True),
        created_by=caller.user,
        content=ContentFile(data, name=name),
        name=name,
        content_type=content_type,
    )
    body = uploaded.to_api()
    lead = types.TextContent(
        text=f"Uploaded {name} ({uploaded.size} bytes). Give {body['urls']['get']} as a file "
        "input of a prediction."
    )
    return answer(body, lead=[lead])


# run_model's tool; the server waits between create and answer (an await, not a thread).
RUN_MODEL = "run_model"

TOOLS = {
    tool.name: tool
    for tool in (
        Tool(
            "search_models",
            "Search models",
            "Search the models you can run (public ones and your account's) by words of their "
            "name, tags, description and README; most relevant first.",
            _object(
                {
                    "query": {"type": "string", "minLength": 1, "maxLength": 200},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 50, "default": 10},
                },
                "query",
            ),
            "GET",
            "api",
            search_models,
        ),
        Tool(
            "get_model",
            "Get a model",
            "A model's description, README, versions, the input and output schema of its latest "
            "(or the named) version, and its price: what a prediction costs at most.",
            _object({"model": MODEL_NAME}, "model"),
            "GET",
            "api",
            get_model,
        ),
        Tool(
            RUN_MODEL,
            "Run a model and wait",
            "Run a model and wait for its output (up to `wait` seconds). Text comes back as "
            "text; images as thumbnails plus signed URLs of the originals. When it runs longer "
            "the answer has the prediction's id: follow it with get_prediction.",
            _object({"model": MODEL, "input": INPUT, "wait": WAIT}, "model", "input"),
            "POST",
            "create",
            create_prediction,  # the server runs create, then waits, then answers
        ),
        Tool(
            "create_prediction",
            "Create a prediction",
            "Start a prediction without waiting for it; get_prediction follows it.",
            _object(
                {
                    "model": MODEL,
                    "input": INPUT,
                    "webhook": WEBHOOK,
                    "webhook_events_filter": WEBHOOK_FILTER,
                },
                "model",
                "input",
            ),
            "POST",
            "create",
            create_prediction,
        ),
        Tool(
            "get_prediction",
            "Get a prediction",
            "A prediction of your account: its status, logs, output (images as thumbnails "
            "plus signed URLs) and metrics.",
            _object({"id": PREDICTION_ID}, "id"),
            "GET",
            "api",
            get_prediction,
        ),
        Tool(
            "list_predictions",
            "List predictions",
            "Your account's predictions, newest first. Page with `before`: the next_before of "
            "the previous answer.",
            _object(
                {
                    "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
                    "before": {"type": "string", "format": "date-time", "maxLength": 40},
                    "status": {"type": "string", "enum": list(Prediction.Status.values)},
                }
            ),
            "GET",
            "api",
            list_predictions,
        ),
        Tool(
            "cancel_prediction",
            "Cancel a prediction",
            "Stop a prediction of your account that is queued or running.",
            _object({"id": PREDICTION_ID}, "id"),
            "POST",
            "api",
            cancel_prediction,
        ),
        Tool(
            "list_hardware",
            "List hardware",
            "The hardware models run on (SKU and name).",
            _object({}),
            "GET",
            "api",
            list_hardware,
        ),
        Tool(
            "upload_file",
            "Upload a file",
            "Store a file for use as a model input, from base64 content or from a URL the "
            "platform fetches. Give exactly one of content_base64 and url. The answer's urls.get "
            "is what to put in a prediction's input.",
            _object(
                {
                    "filename": {"type": "string", "minLength": 1, "maxLength": 255},
                    "content_base64": {"type": "string", "contentEncoding": "base64"},
                    "url": {"type": "string", "format": "uri", "maxLength": 2000},
                    "content_type": {"type": "string", "maxLength": 255},
                },
                "filename",
            ),
            "POST",
            "api",
            upload_file,
        ),
    )
}
