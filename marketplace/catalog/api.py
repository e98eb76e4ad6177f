"""``/v1/models``, versions, collections, hardware, search, account and the webhook secret."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.http import HttpResponse, HttpResponseBase
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from marketplace import audit, hotcache, jsonsafe
from marketplace.accounts.models import Account, User
from marketplace.api import openapi as o
from marketplace.api.authentication import acting_account
from marketplace.api.errors import Problem, invalid
from marketplace.api.pagination import CursorPage
from marketplace.catalog import covers, search
from marketplace.catalog.models import Collection, Hardware, Model, Version
from marketplace.catalog.serializers import (
    ModelCreateInput,
    ModelUpdateInput,
    collection_to_api,
    hardware_to_api,
    model_to_api,
    models_to_api,
    version_to_api,
)
from marketplace.catalog.services import record_model_change
from marketplace.catalog.tags import clean_tags, set_tags
from marketplace.files.access import prime
from marketplace.predictions.models import Prediction

NOT_FOUND = "The requested resource could not be found."
MAX_MODELS_PER_ACCOUNT = 1000  # Replicate's limit


def _user(request: Request) -> User | None:
    return request.user if isinstance(request.user, User) else None


def _model_for(request: Request, owner: str, name: str) -> Model:
    """A model the caller may see; private models of others are 404."""
    model = (
        Model.objects.visible_to(_user(request))
        .select_related("owner")
        .filter(owner__username__iexact=owner, name=name)
        .first()
    )
    if model is None:
        raise Problem(404, NOT_FOUND)
    return model


def _owned_model(request: Request, owner: str, name: str) -> Model:
    model = _model_for(request, owner, name)
    if not model.is_owned_by(_user(request)):
        raise Problem(
            403, "Only the model's owner (a member with write access) may change it", "Forbidden"
        )
    return model


# DRF's cursor pages by the first field and counts its ties, which suits a discrete score.
SEARCH_ORDER = ("-search_score", "-run_count", "-created_at", "-pk")


def _page(
    request: Request,
    view: APIView,
    queryset: QuerySet[Any],
    ordering: str | tuple[str, ...],
    fn: Any,
) -> Response:
    paginator = CursorPage()
    paginator.ordering = ordering  # type: ignore[assignment]
    page = paginator.paginate_queryset(queryset, request, view=view) or []
    if page and isinstance(page[0], Prediction):
        prime(page)  # examples: their file rows in one query, not one per prediction
    # Models are shaped a page at a time (their versions and examples in two queries).
    items = models_to_api(page) if fn is model_to_api else [fn(item) for item in page]
    return paginator.get_paginated_response(items)


def search_text(request: Request) -> str:
    """``QUERY /v1/models`` body: Python sends raw text, JS a JSON-encoded string (rule 12)."""
    raw = request._request.body.decode("utf-8", "replace").strip()
    decoded, refusal = jsonsafe.loads(raw, "query")
    if refusal is not None and refusal.not_json:
        decoded = raw
    elif refusal is not None:
        raise invalid(refusal.field, refusal.description)
    if "\x00" in (decoded if isinstance(decoded, str) else raw):
        raise invalid("query", "the search text contains a NUL character (\\u0000)")
    if isinstance(decoded, str):
        return decoded.strip()
    if isinstance(decoded, dict) and isinstance(decoded.get("query"), str):
        return str(decoded["query"]).strip()
    return raw


def _invalid(field: str, message: str) -> Problem:
    return Problem(
        400,
        f"- {field}: {message}\n",
        "Invalid request",
        invalid_fields=[{"type": "invalid", "field": field, "description": message}],
    )


def _invalid_model(exc: ValidationError, model: Model) -> Problem:
    if "__all__" in exc.message_dict:
        return Problem(409, f"A model named {model.full_name} already exists")
    pairs = [(f, m) for f, ms in exc.message_dict.items() for m in ms]
    return Problem(
        400,
        "".join(f"- {f}: {m}\n" for f, m in pairs),
        "Invalid request",
        invalid_fields=[{"type": "invalid", "field": f, "description": m} for f, m in pairs],
    )


def _tags(data: dict[str, Any]) -> list[str] | None:
    if "tags" not in data:
        return None
    if not isinstance(data["tags"], list):
        raise _invalid("tags", "must be a list of strings")
    try:
        return clean_tags(data["tags"])
    except ValueError as exc:
        raise _invalid("tags", str(exc)) from exc


class ModelCollectionApi(APIView):
    http_method_names = ["get", "post", "query", "options"]

    @extend_schema(
        operation_id="models.list",
        responses=o.ModelPage,
        parameters=[
            OpenApiParameter(
                "sort_by", str, enum=["model_created_at", "latest_version_created_at"]
            ),
            OpenApiParameter("sort_direction", str, enum=["asc", "desc"]),
            o.CURSOR,
        ],
    )
    def get(self, request: Request) -> Response:
        sort_by = request.query_params.get("sort_by", "latest_version_created_at")
        direction = request.query_params.get("sort_direction", "desc")
        if sort_by not in ("model_created_at", "latest_version_created_at"):
            raise Problem(400, "- sort_by: must be model_created_at or latest_version_created_at\n")
        if direction not in ("asc", "desc"):
            raise Problem(400, "- sort_direction: must be asc or desc\n")
        models = Model.objects.filter(visibility=Model.Visibility.PUBLIC).select_related("owner")
        # Both orders are indexed (the latest version's date is kept on the model).
        field = "created_at" if sort_by == "model_created_at" else "latest_version_created_at"
        ordering = f"-{field}" if direction == "desc" else field
        return _page(request, self, models, ordering, model_to_api)

    def query(self, request: Request) -> Response:
        """Public models only (as the reference says), most relevant first."""
        text = search_text(request)
        if not text:
            raise Problem(400, "- query: the request body must be the search text\n")
        public = Model.objects.filter(visibility=Model.Visibility.PUBLIC).select_related("owner")
        return _page(request, self, search.ranked(public, text), SEARCH_ORDER, model_to_api)

    @extend_schema(
        operation_id="models.create", request=ModelCreateInput, responses={201: o.ModelOut}
    )
    def post(self, request: Request) -> Response:
        body = ModelCreateInput(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        owner = Account.objects.filter(username__iexact=data["owner"]).first()
        if owner is None or not owner.can_write(_user(request)):
            raise Problem(403, f"You cannot create models for {data['owner']}", "Forbidden")
        hardware = Hardware.objects.filter(sku=data["hardware"], is_active=True).first()
        if hardware is None:
            raise Problem(
                400,
                f"- hardware: {data['hardware']} is not a hardware SKU (see GET /v1/hardware)\n",
                "Invalid request",
                invalid_fields=[
                    {"type": "invalid", "field": "hardware", "description": "unknown SKU"}
                ],
            )
        model = Model(
            owner=owner,
            name=data["name"],
            visibility=data["visibility"],
            default_hardware=hardware,
            description=data.get("description", ""),
            github_url=data.get("github_url", ""),
            paper_url=data.get("paper_url", ""),
            license_url=data.get("license_url", ""),
        )
        if owner.owned_models.count() >= MAX_MODELS_PER_ACCOUNT:
            raise Problem(409, f"{owner.username} already has {MAX_MODELS_PER_ACCOUNT} models")
        tags = _tags(data)
        try:
            model.full_clean(exclude=["cover_image"])
        except ValidationError as exc:
            raise _invalid_model(exc, model) from exc
        # Fetched (and checked) before anything is stored: a refused image leaves no model.
        cover = None
        if data.get("cover_image_url"):
            try:
                cover = covers.fetch_cover(data["cover_image_url"])
            except covers.CoverRefused as exc:
                raise _invalid("cover_image_url", str(exc)) from exc
        try:
            with transaction.atomic():
                model.save()
                if tags is not None:
                    set_tags(model, tags)
                if cover is not None:
                    covers.store_cover(model, cover)
                audit.record(
                    "model.create",
                    account=owner,
                    target=model,
                    request=request,
                    visibility=model.visibility,
                    via="api",
                )
        except IntegrityError as exc:  # a concurrent create of the same name
            raise Problem(409, f"A model named {model.full_name} already exists") from exc
        body_out = model_to_api(model)
        return Response(body_out, status=201, headers={"Location": body_out["url"]})


class ModelDetailApi(APIView):
    @extend_schema(operation_id="models.get", responses=o.ModelOut)
    def get(self, request: Request, owner: str, name: str) -> Response:
        return Response(model_to_api(_model_for(request, owner, name)))

    @extend_schema(operation_id="models.update", request=ModelUpdateInput, responses=o.ModelOut)
    def patch(self, request: Request, owner: str, name: str) -> Response:
        model = _owned_model(request, owner, name)
        body = ModelUpdateInput(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        data.pop("weights_url", None)  # accepted for compatibility; weights live in versions
        tags = _tags(data)
        data.pop("tags", None)
        changed = {f: v for f, v in data.items() if getattr(model, f) != v}
        for field, value in data.items():
            setattr(model, field, value)
        with transaction.atomic():
            if data:
                model.save(update_fields=[*data.keys(), "updated_at"])
            if tags is not None and set_tags(model, tags):
                changed["tags"] = tags
            record_model_change(model, changed, request)
        return Response(model_to_api(model))

    @extend_schema(operation_id="models.delete", responses={204: o.NO_CONTENT})
    def delete(self, request: Request, owner: str, name: str) -> Response:
        model = _owned_model(request, owner, name)
        if model.visibility != Model.Visibility.PRIVATE:
            raise Problem(409, "Only private models can be deleted", "Conflict")
        if model.versions.exists():
            raise Problem(409, "Delete the model's versions first", "Conflict")
        with transaction.atomic():
            audit.record("model.delete", account=model.owner, target=model, request=request)
            model.delete()
        return Response(status=204)


class ModelReadmeApi(APIView):
    @extend_schema(
        operation_id="models.readme.get", responses={(200, "text/plain"): OpenApiTypes.STR}
    )
    def get(self, request: Request, owner: str, name: str) -> HttpResponse:
        model = _model_for(request, owner, name)
        if not model.readme:
            raise Problem(404, "This model has no README")
        return HttpResponse(model.readme, content_type="text/plain; charset=utf-8")


class ModelExamplesApi(APIView):
    @extend_schema(operation_id="models.examples.list", responses=o.PredictionPage)
    def get(self, request: Request, owner: str, name: str) -> Response:
        model = _model_for(request, owner, name)
        examples = Prediction.objects.select_related(
            "model__owner", "version", "hardware", "instance"
        ).filter(model=model, is_example=True)
        return _page(request, self, examples, "-created_at", lambda p: p.to_api())


class VersionCollectionApi(APIView):
    @extend_schema(operation_id="models.versions.list", responses=o.VersionPage)
    def get(self, request: Request, owner: str, name: str) -> Response:
        model = _model_for(request, owner, name)
        return _page(
            request, self, model.versions.filter(hidden=False), "-created_at", version_to_api
        )


class VersionDetailApi(APIView):
    def _version(self, model: Model, version_id: str) -> Version:
        version = model.versions.filter(pk=version_id).first()
        if version is None:
            raise Problem(404, NOT_FOUND)
        return version

    @extend_schema(operation_id="models.versions.get", responses=o.VersionOut)
    def get(self, request: Request, owner: str, name: str, version_id: str) -> HttpResponseBase:
        def public() -> bytes | None:
            model = Model.objects.filter(visibility=Model.Visibility.PUBLIC).named(owner, name)
            version = model.versions.filter(pk=version_id).first() if model else None
            return JSONRenderer().render(version_to_api(version)) if version else None

        # A public model's version reads the same for everyone: rendered once per process and
        # HOT_CACHE_SECONDS (the official client GETs it before every run of `owner/name:id`).
        body = hotcache.public_body("version", owner.lower(), name, version_id, load=public)
        if body is not None:
            return HttpResponse(body, content_type="application/json")
        model = _model_for(request, owner, name)
        return Response(version_to_api(self._version(model, version_id)))

    @extend_schema(operation_id="models.versions.delete", responses={202: o.NO_CONTENT})
    def delete(self, request: Request, owner: str, name: str, version_id: str) -> Response:
        version = self._version(_owned_model(request, owner, name), version_id)
        with transaction.atomic():
            if version.predictions.exists():
                # Predictions keep pointing at it: hide it from listings and `owner/name` runs.
                Version.objects.filter(pk=version.pk).set_hidden(True)
                action = "version.hide"
            else:
                action = "version.delete"
            audit.record(
                action,
                account=version.model.owner,
                target=version,
                request=request,
                model=version.model.full_name,
            )
            if action == "version.delete":
                version.delete()
        return Response(status=202)


class CollectionListApi(APIView):
    @extend_schema(operation_id="collections.list", responses=o.CollectionPage)
    def get(self, request: Request) -> Response:
        return _page(request, self, Collection.objects.all(), "-created_at", collection_to_api)


class CollectionDetailApi(APIView):
    @extend_schema(operation_id="collections.get", responses=o.CollectionOut)
    def get(self, request: Request, slug: str) -> Response:
        collection = Collection.objects.filter(slug=slug).first()
        if collection is None:
            raise Problem(404, NOT_FOUND)
        members = list(
            collection.members.filter(visibility=Model.Visibility.PUBLIC).select_related("owner")
        )
        return Response(collection_to_api(collection, members))


class HardwareListApi(APIView):
    @extend_schema(operation_id="hardware.list", responses=o.HardwareOut(many=True))
    def get(self, request: Request) -> Response:
        hardware = Hardware.objects.filter(is_active=True).order_by("price_per_second", "sku")
        return Response([hardware_to_api(h) for h in hardware])


class AccountApi(APIView):
    @extend_schema(operation_id="account.get", responses=o.AccountOut)
    def get(self, request: Request) -> Response:
        account = acting_account(request)
        return Response(
            {
                "type": account.type,
                "username": account.username,
                "name": account.name or account.username,
                "github_url": account.github_url or None,
                "avatar_url": account.avatar_url,
            }
        )


class WebhookSecretApi(APIView):
    @extend_schema(operation_id="webhooks.default.secret.get", responses=o.SecretOut)
    def get(self, request: Request) -> Response:
        account = acting_account(request)
        if not account.is_member(_user(request), "member"):
            raise Problem(
                403, f"Read-only members of {account.username} cannot read its webhook secret"
            )
        return Response({"key": account.webhook_secret})


class SearchApi(APIView):
    """``GET /v1/search`` (Replicate's beta search): models and collections; no auth needed."""

    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="search",
        responses=o.SearchOut,
        parameters=[OpenApiParameter("query", str, required=True), OpenApiParameter("limit", int)],
    )
    def get(self, request: Request) -> Response:
        text = request.query_params.get("query", "").strip()
        if not text:
            raise Problem(
                400,
                "- query: required\n",
                "Invalid request",
                invalid_fields=[{"type": "required", "field": "query", "description": "required"}],
            )
        raw_limit = request.query_params.get("limit", "20")
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 50:
            raise Problem(400, "- limit: must be a whole number from 1 to 50\n", "Invalid request")
        limit = int(raw_limit)
        # Public models only, as the reference says (the site's search shows members theirs).
        public = Model.objects.filter(visibility=Model.Visibility.PUBLIC).select_related("owner")
        models = list(search.ranked(public, text)[:limit])
        shaped = models_to_api(models)
        collections = Collection.objects.filter(
            Q(name__icontains=text) | Q(description__icontains=text) | Q(slug__icontains=text)
        )[:limit]
        return Response(
            {
                "query": text,
                "models": [
                    {
                        "model": body,
                        "metadata": {
                            "generated_description": m.description or None,
                            "tags": body["tags"],
                            "score": round(m.search_score, 6),  # type: ignore[attr-defined]
                        },
                    }
                    for m, body in zip(models, shaped, strict=True)
                ],
                "collections": [
                    {
                        **collection_to_api(c),
                        "models": [
                            m.full_name
                            for m in c.members.filter(
                                visibility=Model.Visibility.PUBLIC
                            ).select_related("owner")
                        ],
                    }
                    for c in collections
                ],
                "pages": [],
            }
        )
