"""Hardware, models and their immutable versions."""

from __future__ import annotations

import re
import secrets
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.postgres.search import SearchVectorField
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from marketplace import hotcache
from marketplace.accounts.models import Account, AnyUser, member_accounts
from marketplace.accounts.validators import namespace_validator
from marketplace.catalog import schema as cog_schema

VERSION_ID_RE = re.compile(r"^[0-9a-f]{64}\Z")
_schemas = cog_schema.VersionCache()


class Hardware(models.Model):
    """A machine type predictions run on, priced per second (exact decimal dollars)."""

    sku = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=100)
    price_per_second = models.DecimalField(
        max_digits=14, decimal_places=8, validators=[MinValueValidator(Decimal(0))]
    )
    gpu_count = models.PositiveSmallIntegerField(default=0)
    cpu_count = models.PositiveSmallIntegerField(null=True, blank=True)
    memory_gb = models.PositiveIntegerField(null=True, blank=True)
    gpu_memory_gb = models.PositiveIntegerField(null=True, blank=True)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["price_per_second", "sku"]
        verbose_name_plural = "hardware"

    def __str__(self) -> str:
        return f"{self.name} ({self.sku})"

    @property
    def price_per_hour(self) -> Decimal:
        return self.price_per_second * 3600


def cover_image_path(instance: Model, filename: str) -> str:
    # Stored files are served by whoever knows the path, so the path carries a random token.
    return f"covers/{secrets.token_urlsafe(16)}/{filename.rsplit('/', 1)[-1][-100:]}"


class Tag(models.Model):
    """A word owners put on models (``text-to-image``); explore and search filter by it."""

    name = models.SlugField(max_length=32, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ModelQuerySet(models.QuerySet["Model"]):
    def visible_to(self, user: AnyUser) -> ModelQuerySet:
        """Public models, plus private ones of the accounts the user is a member of (an API
        token: of its own account only)."""
        if user is None or not user.is_authenticated:
            return self.filter(visibility=Model.Visibility.PUBLIC)
        return self.filter(
            Q(visibility=Model.Visibility.PUBLIC) | Q(owner__in=member_accounts(user))
        )

    def named(self, owner: str, name: str) -> Model | None:
        """The model ``owner/name`` (owner case-insensitive) among these; chain it after
        ``visible_to`` so that another account's private model looks like no model at all."""
        return self.filter(owner__username__iexact=owner, name=name).first()

    def refresh_latest_versions(self) -> int:
        """:meth:`Model.refresh_latest_version` for many models in one UPDATE (after versions
        were written around the ORM, e.g. a benchmark's COPY)."""
        latest = Version.objects.filter(model=OuterRef("pk"), hidden=False).order_by("-created_at")
        return self.update(
            latest_version=Subquery(latest.values("pk")[:1]),
            latest_version_created_at=Coalesce(
                Subquery(latest.values("created_at")[:1]), "created_at"
            ),
        )


class Model(models.Model):
    class Visibility(models.TextChoices):
        PUBLIC = "public"
        PRIVATE = "private"

    owner = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="owned_models")
    name = models.CharField(max_length=100, validators=[namespace_validator])
    visibility = models.CharField(
        max_length=8, choices=Visibility.choices, default=Visibility.PUBLIC
    )
    description = models.CharField(max_length=500, blank=True)
    readme = models.TextField(blank=True, help_text="Markdown")
    cover_image = models.ImageField(upload_to=cover_image_path, blank=True)
    default_hardware = models.ForeignKey(Hardware, on_delete=models.PROTECT, related_name="+")
    run_count = models.PositiveBigIntegerField(default=0)
    tags: models.ManyToManyField[Tag, Any] = models.ManyToManyField(
        Tag, blank=True, related_name="models"
    )
    # Kept by refresh_latest_version whenever a version appears, hides or goes, so that pages and
    # /v1/models read them instead of aggregating versions per request. The date is the model's
    # own while it has no version (the API's sort order).
    latest_version = models.ForeignKey(
        "Version", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    latest_version_created_at = models.DateTimeField(default=timezone.now)
    github_url = models.URLField(blank=True)
    paper_url = models.URLField(blank=True)
    license_url = models.URLField(blank=True)
    # Staff pick: shown first on the explore page and in the API's featured collection.
    featured = models.BooleanField(default=False)
    # Seconds an idle instance of this model stays warm; empty means INSTANCE_IDLE_TIMEOUT.
    idle_timeout = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ModelQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint("owner", "name", name="model_owner_name_unique")]
        # One per ordering of explore, profiles and /v1/models (public models, newest or most
        # run first).
        indexes = [
            models.Index(fields=["visibility", "-run_count"]),
            models.Index(fields=["visibility", "-created_at"], name="model_public_newest"),
            models.Index(
                fields=["visibility", "-latest_version_created_at"], name="model_public_updated"
            ),
            models.Index(
                fields=["-run_count"], condition=Q(featured=True), name="model_featured_popular"
            ),
        ]

    def __str__(self) -> str:
        return self.full_name

    @property
    def full_name(self) -> str:
        return f"{self.owner.username}/{self.name}"

    @property
    def url(self) -> str:
        return f"{settings.PUBLIC_URL}/{self.full_name}"

    @property
    def cover_image_url(self) -> str | None:
        # The stable /files/ reference: public covers are served (or redirected to the bucket)
        # by the app, whatever the storage backend.
        if not self.cover_image:
            return None
        return f"{settings.PUBLIC_URL}{settings.MEDIA_URL}{self.cover_image.name}"

    def refresh_latest_version(self) -> None:
        """Store which visible version is the newest (after any change to its versions)."""
        latest = self.versions.filter(hidden=False).order_by("-created_at").first()
        self.latest_version = latest
        self.latest_version_created_at = latest.created_at if latest else self.created_at
        Model.objects.filter(pk=self.pk).update(
            latest_version=latest, latest_version_created_at=self.latest_version_created_at
        )

    def is_owned_by(self, user: AnyUser) -> bool:
        """Whether ``user`` may change this model (and its versions): its owner's writers."""
        return self.owner.can_write(user)

    def is_visible_to(self, user: AnyUser) -> bool:
        return self.visibility == self.Visibility.PUBLIC or self.owner.is_member(user)


class VersionQuerySet(models.QuerySet["Version"]):
    def visible_to(self, user: AnyUser) -> VersionQuerySet:
        if user is None or not user.is_authenticated:
            return self.filter(model__visibility=Model.Visibility.PUBLIC)
        return self.filter(
            Q(model__visibility=Model.Visibility.PUBLIC) | Q(model__owner__in=member_accounts(user))
        )

    def latest_of(self, model: Model) -> Version | None:
        """The version ``owner/name`` runs: the newest that is not hidden (a deleted version
        still referenced by predictions is never "the latest")."""
        return self.filter(model=model, hidden=False).order_by("-created_at").first()

    def set_hidden(self, hidden: bool) -> int:
        """Hide (or show again) these versions, keeping each model's latest version right."""
        model_ids = set(self.values_list("model_id", flat=True))
        count = self.update(hidden=hidden)
        hotcache.clear()  # a hidden version must not run from a cached lookup
        for model in Model.objects.filter(pk__in=model_ids):
            model.refresh_latest_version()
        return count

    def resolve(self, ref: str) -> Version | None:
        """A version from a 64-hex id, ``owner/name:id`` or ``owner/name`` (its latest version)."""
        qs = self.select_related("model", "model__owner", "model__default_hardware").defer(
            "openapi_schema"
        )
        owner_name, _, version_id = ref.partition(":")
        if "/" not in owner_name:
            return qs.filter(pk=ref).first() if VERSION_ID_RE.match(ref) else None
        owner, _, name = owner_name.partition("/")
        qs = qs.filter(model__owner__username__iexact=owner, model__name=name)
        if version_id:
            return qs.filter(pk=version_id).first()
        # A hidden (deleted but still referenced) version is never "the latest".
        return qs.filter(hidden=False).order_by("-created_at").first()


class Collection(models.Model):
    """A curated, public list of models (Replicate's collections)."""

    slug = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    members: models.ManyToManyField[Model, Any] = models.ManyToManyField(
        "Model", blank=True, related_name="collections"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.slug


class SearchDocument(models.Model):
    """What search matches a model by (``catalog.search`` writes it). ``name`` is the owner and
    model name as lowercase words, for trigram similarity (typos); ``vector`` is the weighted
    ``tsvector`` on PostgreSQL (SQLite keeps the same words in an FTS5 table instead)."""

    model = models.OneToOneField(
        "Model", primary_key=True, on_delete=models.CASCADE, related_name="search_document"
    )
    name = models.TextField()
    vector = SearchVectorField(null=True)

    def __str__(self) -> str:
        return self.name


class Version(models.Model):
    """An immutable build of a model: its Cog schema and where its code lives."""

    class PriceUnit(models.TextChoices):
        PREDICTION = "prediction"
        OUTPUT_ITEM = "output_item"

    id = models.CharField(
        primary_key=True,
        max_length=64,
        validators=[RegexValidator(VERSION_ID_RE, "A version id is 64 lowercase hex digits")],
    )
    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="versions")
    openapi_schema = models.JSONField()
    cog_version = models.CharField(max_length=40)
    cog_config = models.JSONField(default=dict, blank=True)
    # Exactly one of these says where the code is: a registry image pinned by digest, or a Cog
    # project directory on the agent's disk (the local runtime).
    image = models.CharField(max_length=500, blank=True)
    source_path = models.CharField(max_length=1000, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # Deleting a version that has predictions only hides it: the predictions keep pointing at it.
    hidden = models.BooleanField(default=False)
    # Optional flat price charged on top of (or instead of) hardware time, set by the owner or
    # staff: per prediction, or per item of output (e.g. per image).
    unit_price = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    price_unit = models.CharField(
        max_length=16, choices=PriceUnit.choices, default=PriceUnit.PREDICTION
    )
    # The owner's part of a hardware-priced version's price: dollars per second on top of the
    # hardware's price, paid out to the owner (less the platform fee) when others run it.
    markup_per_second = models.DecimalField(
        max_digits=14,
        decimal_places=8,
        default=Decimal(0),
        validators=[MinValueValidator(Decimal(0))],
    )

    # A version made by a training: the base version whose code (image or directory) it runs,
    # the training that made it, and its weights (a stored file's name in default storage,
    # ``files.Kind.WEIGHTS``), handed to the model as ``COG_WEIGHTS`` → ``setup(weights=…)``.
    trained_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="trained_versions"
    )
    training = models.OneToOneField(
        "predictions.Prediction",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="trained_version",
    )
    weights = models.CharField(max_length=500, blank=True)

    objects = VersionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        get_latest_by = "created_at"
        constraints = [
            models.CheckConstraint(
                condition=~Q(image="") | ~Q(source_path=""), name="version_has_image_or_source"
            ),
            models.CheckConstraint(
                condition=Q(markup_per_second__gte=0), name="version_markup_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model.full_name}:{self.id[:12]}"

    @property
    def concurrency(self) -> int:
        """Prediction slots per instance (Cog's ``concurrency.max``; 1 unless async)."""
        value = (self.cog_config.get("concurrency") or {}).get("max", 1)
        return max(1, int(value)) if isinstance(value, int | str) and str(value).isdigit() else 1

    @property
    def schema(self) -> dict[str, Any]:
        """The OpenAPI document, from a per-process cache (versions never change, and decoding
        the document on every request would dominate the API's hot path)."""
        document = _schemas.get(self.pk)
        if document is None:
            if "openapi_schema" in self.get_deferred_fields():
                document = (
                    Version.objects.filter(pk=self.pk)
                    .values_list("openapi_schema", flat=True)
                    .get()
                )
            else:
                document = self.openapi_schema
            _schemas.remember(self.pk, document)
        return document

    @classmethod
    def load_schemas(cls, versions: list[Version]) -> None:
        """Make ``schema`` of these versions (loaded without ``openapi_schema``) cost nothing:
        the ones this process does not hold yet come in one query. Decoding every version's
        document on each page of models was most of what ``GET /v1/models`` cost."""
        missing = [v.pk for v in versions if _schemas.get(v.pk) is None]
        if missing:
            for pk, document in cls.objects.filter(pk__in=missing).values_list(
                "pk", "openapi_schema"
            ):
                _schemas.remember(pk, document)

    @property
    def is_trainable(self) -> bool:
        """Whether its model declares ``train:`` (its document has ``TrainingInput``)."""
        return cog_schema.is_trainable(self.schema)

    @property
    def train_schema(self) -> dict[str, Any]:
        """The document as a training sees it: ``TrainingInput``/``TrainingOutput`` in the places
        of ``Input``/``Output``, so validation, file and secret rules apply unchanged."""
        return cog_schema.training_view(self.schema)

    @property
    def is_iterator_output(self) -> bool:
        return cog_schema.is_iterator_output(self.schema)

    def validate_input(
        self, payload: Any, *, training: bool = False
    ) -> tuple[dict[str, Any], list[cog_schema.FieldError]]:
        if training:
            return cog_schema.validate_input(f"{self.id}:train", self.train_schema, payload)
        return cog_schema.validate_input(self.id, self.schema, payload)

    def secret_fields(self) -> list[str]:
        return cog_schema.secret_fields(self.schema)
