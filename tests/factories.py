from __future__ import annotations

from pathlib import Path

import factory
from django.conf import settings

from marketplace.accounts.models import ApiToken, User
from marketplace.catalog.models import Hardware, Model, Version
from marketplace.catalog.services import version_publish_local

EXAMPLES = Path(settings.BASE_DIR) / "examples"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")


def cpu() -> Hardware:
    hardware, _ = Hardware.objects.get_or_create(
        sku="cpu",
        defaults={"name": "CPU", "price_per_second": "0.000100", "cpu_count": 4, "memory_gb": 8},
    )
    return hardware


def token_for(user: User) -> str:
    return ApiToken.create_for(user)[1]


def publish(
    user: User, directory: str | Path, name: str | None = None, **kwargs: object
) -> Version:
    """Publish an example (by name) or a fixture directory (by path) for ``user``."""
    cpu()
    path = Path(directory) if Path(directory).is_absolute() else EXAMPLES / str(directory)
    version, _ = version_publish_local(
        path=path, owner=user.account, name=name or path.name, **kwargs
    )
    return version


def private(version: Version) -> Version:
    Model.objects.filter(pk=version.model_id).update(visibility=Model.Visibility.PRIVATE)
    version.model.refresh_from_db()
    return version
