"""Access-checked fetches for the site's pages: outsiders get 404 for anything private."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

from marketplace.accounts.models import Account, AnyUser, member_accounts
from marketplace.catalog.models import Model, Version
from marketplace.predictions.models import Prediction


def model_for(user: AnyUser, owner: str, name: str) -> Model:
    model = (
        Model.objects.visible_to(user)
        .select_related("owner", "default_hardware")
        .named(owner, name)
    )
    if model is None:
        raise Http404("No such model")
    return model


def owned_model_for(user: AnyUser, owner: str, name: str) -> Model:
    model = model_for(user, owner, name)
    if not model.is_owned_by(user):
        raise Http404("No such model")
    return model


def accounts_of(user: AnyUser, at_least: str = "member") -> list[Account]:
    """The accounts the user holds at least ``at_least`` in (default: may write to), their
    personal account first: the choices of the site's owner switchers."""
    if user is None or not user.is_authenticated:
        return []
    accounts = Account.objects.filter(pk__in=member_accounts(user, at_least))
    return sorted(accounts, key=lambda a: (a.is_organization, a.username))


def chosen_account(user: AnyUser, username: str | None, at_least: str = "member") -> Account:
    """The account a form says to act as (empty: the personal account); 404 unless the user
    holds at least ``at_least`` there."""
    if not username:
        assert user is not None and user.is_authenticated
        return user.personal_account  # type: ignore[union-attr]
    account = Account.objects.filter(username__iexact=username).first()
    if account is None or not account.is_member(user, at_least):
        raise Http404("No such account")
    return account


def versions_of(model: Model) -> QuerySet[Version]:
    return model.versions.filter(hidden=False).order_by("-created_at")


def trainable(model: Model, version: object = None) -> bool:
    """Whether the page's version (else the model's latest) has a trainer: the Train tab."""
    if not isinstance(version, Version):
        if model.latest_version_id is None:
            return False
        # Only the id is read: the schema comes from the per-process cache.
        version = Version.objects.only("id").filter(pk=model.latest_version_id).first()
    return version is not None and version.is_trainable


def prediction_for(user: AnyUser, prediction_id: str) -> Prediction:
    """A prediction its account's members may see; an example also to whoever sees its model."""
    prediction = (
        Prediction.objects.select_related(
            "model__owner",
            "model__default_hardware",
            "version",
            "hardware",
            "account",
            "destination__owner",
        )
        .filter(pk=prediction_id)
        .first()
    )
    if prediction is None:
        raise Http404("No such prediction")
    if prediction.account.is_member(user):
        return prediction
    if prediction.is_example and prediction.model.is_visible_to(user):
        return prediction
    raise Http404("No such prediction")
