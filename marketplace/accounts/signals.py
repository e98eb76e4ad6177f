from __future__ import annotations

from typing import Any

from django.db.models.signals import post_save
from django.dispatch import receiver

from marketplace.accounts.models import Account, User


@receiver(post_save, sender=User)
def create_personal_account(
    sender: type[User], instance: User, created: bool, **kwargs: Any
) -> None:
    # Every path that creates a user (createsuperuser, admin, seed, tests) gets its namespace.
    if created:
        Account.objects.get_or_create(user=instance, defaults={"username": instance.username})
