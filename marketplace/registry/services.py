"""Push → version: read a pushed image's Cog labels from the registry and publish it.

The registry notifies :func:`handle_notification` of every manifest push (at least once, from an
in-memory queue). Each push is recorded once as an :class:`ImagePush` keyed by repository +
digest, so redeliveries and :func:`reconcile` passes are no-ops; an image that is not a Cog image
is recorded as rejected with the reason, which the model page shows.

Deletes: when a recorded manifest is deleted, its version is hidden (it can no longer be pulled,
so it can no longer run on a host that does not have it). Notifications may be redelivered and
reordered, so they are hints: before hiding (or, on a push of a deleted digest, restoring) a
version, the registry is asked whether the manifest exists now.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

import httpx
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from marketplace import audit, jsonsafe
from marketplace.accounts.models import Account, User
from marketplace.catalog.models import Hardware, Model, Version
from marketplace.registry.models import ImagePush
from marketplace.registry.tokens import mint

logger = logging.getLogger(__name__)

MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
)
INDEX_TYPES = (
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
)
ACCEPT = ", ".join(MANIFEST_TYPES + INDEX_TYPES)
REQUIRED_LABELS = ("run.cog.config", "run.cog.openapi_schema")


class RegistryError(Exception):
    """The registry could not be read (worth retrying later)."""


class NotACogImage(Exception):
    """The image can never become a version; the message says why, for its owner."""


@dataclass
class CogImage:
    labels: dict[str, str]
    schema: dict[str, Any]
    config: dict[str, Any]
    cog_version: str


def version_id_for(repository: str, digest: str) -> str:
    """A version id derived from the image: the same manifest in another repository is another
    version (ids are global), the same manifest pushed twice is the same one."""
    return hashlib.sha256(f"{repository}@{digest}".encode()).hexdigest()


def image_reference(repository: str, digest: str) -> str:
    return f"{settings.REGISTRY_HOST}/{repository}@{digest}"


class RegistryClient:
    """Reads manifests and blobs with tokens minted in-process (no HTTP round trip to Django)."""

    def __init__(self, base_url: str | None = None, timeout: float = 30.0):
        self.base_url = (base_url or settings.REGISTRY_URL).rstrip("/")
        self.http = httpx.Client(timeout=timeout, follow_redirects=True)

    def close(self) -> None:
        self.http.close()

    def _get(self, path: str, scope: dict[str, Any], accept: str | None = None) -> httpx.Response:
        token = mint("platform-inspector", [scope], ttl=120)
        headers = {"Authorization": f"Bearer {token}"}
        if accept:
            headers["Accept"] = accept
        try:
            response = self.http.get(f"{self.base_url}{path}", headers=headers)
        except httpx.HTTPError as exc:
            raise RegistryError(f"registry unreachable: {exc}") from exc
        if response.status_code >= 500 or response.status_code in (401, 403):
            raise RegistryError(f"GET {path}: HTTP {response.status_code} {response.text[:200]}")
        return response

    def _pull(self, repository: str) -> dict[str, Any]:
        return {"type": "repository", "name": repository, "actions": ["pull"]}

    def manifest(self, repository: str, reference: str) -> tuple[dict[str, Any], str]:
        response = self._get(
            f"/v2/{repository}/manifests/{reference}", self._pull(repository), ACCEPT
        )
        if response.status_code == 404:
            raise NotACogImage(f"{repository}@{reference} is not in the registry")
        digest = response.headers.get("Docker-Content-Digest", "")
        return response.json(), digest

    def image_config(self, repository: str, digest: str) -> dict[str, Any]:
        manifest, _ = self.manifest(repository, digest)
        if manifest.get("mediaType") in INDEX_TYPES or "manifests" in manifest:
            for entry in manifest.get("manifests", []):
                platform = entry.get("platform") or {}
                if platform.get("os") == "linux" and platform.get("architecture") == "amd64":
                    return self.image_config(repository, entry["digest"])
            raise NotACogImage("The image index has no linux/amd64 image")
        config = manifest.get("config") or {}
        if not config.get("digest"):
            raise NotACogImage("The manifest has no image configuration")
        response = self._get(f"/v2/{repository}/blobs/{config['digest']}", self._pull(repository))
        if response.status_code != 200:
            raise RegistryError(f"config blob of {repository}: HTTP {response.status_code}")
        return response.json()

    def manifest_exists(self, repository: str, digest: str) -> bool:
        response = self._get(f"/v2/{repository}/manifests/{digest}", self._pull(repository), ACCEPT)
        return response.status_code == 200

    def tags(self, repository: str) -> list[str]:
        response = self._get(f"/v2/{repository}/tags/list", self._pull(repository))
        if response.status_code == 404:
            return []
        return list(response.json().get("tags") or [])

    def catalog(self) -> list[str]:
        scope = {"type": "registry", "name": "catalog", "actions": ["*"]}
        repositories: list[str] = []
        path = "/v2/_catalog?n=1000"
        while path:
            response = self._get(path, scope)
            repositories += response.json().get("repositories") or []
            link = response.headers.get("Link", "")
            path = link[1 : link.index(">")] if link.startswith("<") else ""
        return repositories


def read_cog_image(client: RegistryClient, repository: str, digest: str) -> CogImage:
    config = client.image_config(repository, digest)
    labels = (config.get("config") or {}).get("Labels") or {}
    missing = [label for label in REQUIRED_LABELS if label not in labels]
    if missing:
        raise NotACogImage(
            "This image is not a Cog model: it has no "
            + ", ".join(missing)
            + " label(s). Build and push it with `cog push`, which adds them."
        )
    # Pushers write these labels: the same JSON door as the API (depth, unstorable strings).
    schema, problem = jsonsafe.loads(labels["run.cog.openapi_schema"], "openapi_schema")
    if problem is not None:
        raise NotACogImage(f"The run.cog.openapi_schema label is refused: {problem.description}")
    cog_config, problem = jsonsafe.loads(labels["run.cog.config"], "config")
    if problem is not None:
        raise NotACogImage(f"The run.cog.config label is refused: {problem.description}")
    if not isinstance(schema, dict) or "Input" not in (schema.get("components") or {}).get(
        "schemas", {}
    ):
        raise NotACogImage("The run.cog.openapi_schema label has no Input schema")
    if not isinstance(cog_config, dict):
        raise NotACogImage("The run.cog.config label is not a JSON object")
    return CogImage(labels, schema, cog_config, labels.get("run.cog.version", "")[:40])


def _pusher(username: str) -> User | None:
    return User.objects.filter(username=username).first() if username else None


def _model_for(repository: str, pusher: User | None = None) -> Model | None:
    owner_name, _, model_name = repository.partition("/")
    account = Account.objects.filter(username=owner_name).first()
    hardware = (
        Hardware.objects.filter(sku="cpu").first()
        or Hardware.objects.order_by("price_per_second").first()
    )
    if account is None or hardware is None or not model_name or "/" in model_name:
        return None
    with transaction.atomic():
        model, created = Model.objects.get_or_create(
            owner=account,
            name=model_name,
            # A model created by its first push starts private: its owner publishes it.
            defaults={
                "visibility": Model.Visibility.PRIVATE,
                "default_hardware": hardware,
            },
        )
        if created:
            audit.record("model.create", actor=pusher, account=account, target=model, via="push")
    return model


def record_push(
    repository: str,
    digest: str,
    *,
    tag: str = "",
    pushed_by: str = "",
    event_id: str = "",
    client: RegistryClient | None = None,
) -> ImagePush:
    """Publish (or reject) one pushed manifest. Idempotent: a known digest returns its record."""
    existing = ImagePush.objects.filter(repository=repository, digest=digest).first()
    if existing is not None:
        if existing.deleted_at is not None:
            return _restore_if_back(existing, client)
        return existing
    own_client = client is None
    client = client or RegistryClient()
    try:
        pusher = _pusher(pushed_by)
        model = _model_for(repository, pusher)
        version: Version | None = None
        try:
            if model is None:
                raise NotACogImage(f"No account owns the namespace of {repository}")
            image = read_cog_image(client, repository, digest)
        except NotACogImage as exc:
            outcome, reason = ImagePush.Outcome.REJECTED, str(exc)
            logger.info("push of %s@%s rejected: %s", repository, digest, reason)
        else:
            outcome, reason = ImagePush.Outcome.PUBLISHED, ""
        try:
            with transaction.atomic():
                if outcome == ImagePush.Outcome.PUBLISHED:
                    assert model is not None
                    version, created = Version.objects.get_or_create(
                        id=version_id_for(repository, digest),
                        defaults={
                            "model": model,
                            "openapi_schema": image.schema,
                            "cog_version": image.cog_version,
                            "cog_config": image.config,
                            "image": image_reference(repository, digest),
                        },
                    )
                    if created:
                        audit.record(
                            "version.create",
                            actor=pusher,
                            account=model.owner,
                            target=version,
                            via="push",
                            model=model.full_name,
                            image=version.image,
                        )
                return ImagePush.objects.create(
                    repository=repository,
                    digest=digest,
                    tag=tag[:128],
                    model=model,
                    version=version,
                    outcome=outcome,
                    reason=reason,
                    pushed_by=pushed_by[:150],
                    event_id=event_id[:64],
                )
        except IntegrityError:
            # A concurrent delivery of the same event won the race.
            return ImagePush.objects.get(repository=repository, digest=digest)
    finally:
        if own_client:
            client.close()


def _restore_if_back(push: ImagePush, client: RegistryClient | None) -> ImagePush:
    """A push of a digest recorded as deleted: if the manifest is there again, so is the version.
    (A late redelivery of the original push finds it still gone and changes nothing.)"""
    own_client = client is None
    client = client or RegistryClient()
    try:
        if not client.manifest_exists(push.repository, push.digest):
            return push
    finally:
        if own_client:
            client.close()
    with transaction.atomic():
        ImagePush.objects.filter(pk=push.pk).update(deleted_at=None)
        if push.version_id is not None:
            Version.objects.filter(pk=push.version_id).set_hidden(False)
            _record_version_event("version.restore", push)
    logger.info("%s@%s was pushed again: version restored", push.repository, push.digest)
    push.refresh_from_db()
    return push


def _record_version_event(action: str, push: ImagePush) -> None:
    """The registry (not a person on this site) changed a version: the platform is the actor."""
    version = Version.objects.select_related("model__owner").get(pk=push.version_id)
    audit.record(
        action,
        account=version.model.owner,
        target=version,
        via="registry",
        model=version.model.full_name,
        digest=push.digest,
    )


def record_delete(
    repository: str, digest: str, *, client: RegistryClient | None = None
) -> ImagePush | None:
    """A manifest was deleted: hide the version it backed. Idempotent; None when the digest is
    not a recorded manifest (blob deletes carry a digest too) or the manifest is back."""
    push = ImagePush.objects.filter(repository=repository, digest=digest).first()
    if push is None:
        return None
    if push.deleted_at is not None:
        return push  # a redelivery
    own_client = client is None
    client = client or RegistryClient()
    try:
        if client.manifest_exists(repository, digest):
            return None  # pushed again since: the delete is stale
    finally:
        if own_client:
            client.close()
    with transaction.atomic():
        ImagePush.objects.filter(pk=push.pk, deleted_at__isnull=True).update(
            deleted_at=timezone.now()
        )
        if push.version_id is not None:
            Version.objects.filter(pk=push.version_id).set_hidden(True)
            _record_version_event("version.hide", push)
    logger.info("%s@%s deleted from the registry: version hidden", repository, digest)
    push.refresh_from_db()
    return push


def handle_notification(envelope: dict[str, Any]) -> list[ImagePush]:
    """Process a registry notification envelope; manifest pushes and deletes matter."""
    records = []
    client = RegistryClient()
    try:
        for event in envelope.get("events") or []:
            target = event.get("target") or {}
            if event.get("action") == "delete":
                # distribution sends no media type with deletes: a manifest or a blob.
                if target.get("repository") and target.get("digest"):
                    deleted = record_delete(target["repository"], target["digest"], client=client)
                    if deleted is not None:
                        records.append(deleted)
                continue
            if event.get("action") != "push":
                continue
            if target.get("mediaType") not in MANIFEST_TYPES + INDEX_TYPES:
                continue
            repository, digest = target.get("repository"), target.get("digest")
            if not repository or not digest:
                continue
            records.append(
                record_push(
                    repository,
                    digest,
                    tag=target.get("tag") or "",
                    pushed_by=(event.get("actor") or {}).get("name") or "",
                    event_id=event.get("id") or "",
                    client=client,
                )
            )
    finally:
        client.close()
    return records


def reconcile(repositories: list[str] | None = None) -> list[ImagePush]:
    """Re-read the registry (catalog → tags → manifest digests) and record what was missed:
    pushes, and deletes of recorded manifests (of the repositories walked)."""
    client = RegistryClient()
    new: list[ImagePush] = []
    try:
        walked = repositories if repositories is not None else client.catalog()
        for push in ImagePush.objects.filter(
            repository__in=walked, outcome=ImagePush.Outcome.PUBLISHED, deleted_at__isnull=True
        ):
            deleted = record_delete(push.repository, push.digest, client=client)
            if deleted is not None:
                new.append(deleted)
        for repository in walked:
            for tag in client.tags(repository):
                try:
                    _, digest = client.manifest(repository, tag)
                except NotACogImage:
                    continue  # deleted meanwhile
                if not digest:
                    continue
                if ImagePush.objects.filter(repository=repository, digest=digest).exists():
                    continue
                new.append(record_push(repository, digest, tag=tag, client=client))
    finally:
        client.close()
    return new
