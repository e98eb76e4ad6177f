"""An organisation with one person in each role, an outsider, and the org's private things.

``world`` is built fresh for every test (plain ORM, no Cog server: the hello example's schema is
already generated), so a matrix case may change or delete what it touches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from marketplace.accounts.models import Account, ApiToken, Membership, User
from marketplace.catalog.models import Collection, Model, Version
from marketplace.catalog.services import version_publish_local
from marketplace.deployments.models import Deployment
from marketplace.predictions.models import Prediction
from marketplace.predictions.services import prediction_create
from marketplace.predictions.uploads import UploadedFile, default_expiry
from tests.docker.conftest import (  # noqa: F401 - the registry fixtures, for test_registry
    cog_images,
    docker_client,
    registry_server,
    registry_stack,
)
from tests.factories import EXAMPLES, UserFactory, cpu

TRAINABLE = EXAMPLES.parent / "tests" / "fixtures" / "cog" / "trainable"

# Who may do what, in this order everywhere: the org's owner, a member, a read-only member, a
# signed-in outsider, and nobody.
ROLES = ("owner", "member", "read_only", "outsider", "anonymous")


@dataclass
class World:
    org: Account
    users: dict[str, User]
    secret: Model  # acme/secret: private, one version
    version: Version
    public: Model  # acme/open: public
    prediction: Prediction  # run for acme by its member
    file: UploadedFile  # uploaded for acme
    personal_secret: Model  # olive/diary: the owner's own private model
    deployment: Deployment  # acme/prod: runs acme/secret
    trainable: Version  # acme/trainable: private, trainable
    training: Prediction  # of acme/trainable into acme/tuned, for acme by its member
    keys: dict[str, str] = field(default_factory=dict)

    def api(self, role: str, key: str | None = None) -> APIClient:
        """An API client for ``role``: the org's members use a write token scoped to the org,
        the outsider a token of their own; anonymous sends none."""
        client = APIClient()
        secret = key or self.keys.get(role)
        if secret:
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        return client

    def site(self, role: str) -> Client:
        client = Client()
        if role in self.users:
            client.force_login(self.users[role])
        return client

    def token(self, role: str, **kwargs: Any) -> str:
        return ApiToken.create_for(self.users[role], "t", **kwargs)[1]


def _publish(owner: Account, name: str, visibility: str) -> Version:
    version, _ = version_publish_local(
        path=EXAMPLES / "hello", owner=owner, name=name, visibility=visibility
    )
    return version


@pytest.fixture
def world(db: None) -> World:
    cpu()
    users = {
        "owner": UserFactory(username="olive"),
        "member": UserFactory(username="mia"),
        "read_only": UserFactory(username="rita"),
        "outsider": UserFactory(username="oscar"),
    }
    org = Account.objects.create(username="acme", name="Acme", type=Account.Type.ORGANIZATION)
    for role in ("owner", "member", "read_only"):
        Membership.objects.create(account=org, user=users[role], role=role)
    version = _publish(org, "secret", Model.Visibility.PRIVATE)
    Model.objects.filter(pk=version.model_id).update(readme="# Secret\n\nOnly for Acme.")
    public = Model.objects.create(owner=org, name="open", default_hardware=cpu())
    personal = Model.objects.create(
        owner=users["owner"].account,
        name="diary",
        default_hardware=cpu(),
        visibility=Model.Visibility.PRIVATE,
    )
    prediction = prediction_create(
        version=version, input={"text": "hi"}, account=org, created_by=users["member"]
    )
    trainable, _ = version_publish_local(
        path=TRAINABLE, owner=org, name="trainable", visibility=Model.Visibility.PRIVATE
    )
    training = prediction_create(
        version=trainable,
        input={"phrase": "hi"},
        account=org,
        created_by=users["member"],
        destination="acme/tuned",
    )
    tools = Collection.objects.create(slug="tools", name="Tools")
    tools.members.add(version.model_id, public)
    upload = UploadedFile(
        account=org,
        created_by=users["member"],
        name="a.txt",
        size=2,
        sha256="0" * 64,
        md5="0" * 32,
        expires_at=default_expiry(),
    )
    upload.content.save("a.txt", _content(b"hi"), save=False)
    upload.save()
    world = World(
        org=org,
        users=users,
        secret=Model.objects.get(pk=version.model_id),
        version=version,
        public=public,
        prediction=prediction,
        file=upload,
        personal_secret=personal,
        deployment=Deployment.objects.create(
            owner=org,
            name="prod",
            model_id=version.model_id,
            version=version,
            hardware=cpu(),
            min_instances=0,
            max_instances=1,
        ),
        trainable=trainable,
        training=training,
    )
    for role in ("owner", "member", "read_only"):
        world.keys[role] = world.token(role, account=org)
    world.keys["outsider"] = world.token("outsider")
    return world


def _content(data: bytes) -> Any:
    from django.core.files.base import ContentFile

    return ContentFile(data)
