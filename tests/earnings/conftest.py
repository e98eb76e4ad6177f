from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from marketplace.accounts.models import Account, Membership, User
from marketplace.billing import services
from marketplace.billing.models import BillingAccount
from marketplace.catalog.models import Hardware, Version
from marketplace.catalog.services import version_publish_local
from marketplace.predictions.models import Prediction
from marketplace.predictions.services import prediction_create
from tests.billing.conftest import (  # noqa: F401 - the loopback Stripe server fixtures
    StripeServer,
    priced,
    stripe_env,
    stripe_server,
)
from tests.billing.helpers import run
from tests.factories import EXAMPLES, UserFactory, cpu

D = Decimal


@pytest.fixture(autouse=True)
def fee(settings: Any) -> Decimal:
    settings.EARNINGS_PLATFORM_FEE_PERCENT = D("20")
    settings.EARNINGS_MIN_PAYOUT = D("0.10")
    return D("20")


def payer(
    username: str, *, credit: str | None = "100", mode: str = BillingAccount.Mode.PREPAID
) -> User:
    """A person whose runs are paid from credit (prepaid), or invoiced (postpaid)."""
    person = UserFactory(username=username)
    billing = services.billing_for(person.account)
    BillingAccount.objects.filter(pk=billing.pk).update(mode=mode)
    if credit:
        services.credits_grant(person.account, D(credit), source="staff", reference=username)
    return person


def organization(name: str, **members: str) -> Account:
    org = Account.objects.create(username=name, type=Account.Type.ORGANIZATION)
    for username, role in members.items():
        Membership.objects.create(account=org, user=User.objects.get(username=username), role=role)
    billing = services.billing_for(org)
    BillingAccount.objects.filter(pk=billing.pk).update(mode=BillingAccount.Mode.PREPAID)
    services.credits_grant(org, D(100), source="staff", reference=f"org-{name}")
    return org


def flat(
    owner: Any,
    name: str = "paid",
    price: str = "0.05",
    unit: str = "prediction",
    example: str = "hello",
) -> Version:
    """A model of ``owner`` (a user or an organisation account) at a flat price; each model
    of a test needs its own ``example`` (the same code cannot be published twice)."""
    account = owner if isinstance(owner, Account) else owner.account
    cpu()
    version, _ = version_publish_local(path=EXAMPLES / example, owner=account, name=name)
    Version.objects.filter(pk=version.pk).update(unit_price=D(price), price_unit=unit)
    return Version.objects.select_related("model__default_hardware", "model__owner").get(
        pk=version.pk
    )


def marked_up(
    owner: Any, name: str = "timed", markup: str = "0.00125", example: str = "hello"
) -> Version:
    version = flat(owner, name, example=example)
    Version.objects.filter(pk=version.pk).update(unit_price=None, markup_per_second=D(markup))
    Hardware.objects.filter(sku="cpu").update(price_per_second=D("0.0001"))
    return Version.objects.select_related("model__default_hardware", "model__owner").get(
        pk=version.pk
    )


def use(
    version: Version,
    who: User,
    seconds: float = 1.0,
    *,
    account: Account | None = None,
    status: str = Prediction.Status.SUCCEEDED,
) -> Prediction:
    """``who`` runs ``version`` (billed to ``account``, default their own) to its end."""
    inputs = version.schema["components"]["schemas"]["Input"]["properties"]
    prediction = prediction_create(
        version=version,
        input={"text": "x"} if "text" in inputs else {},
        account=account or who.account,
        created_by=who,
    )
    return run(prediction, seconds, status)


def card(person: User, server: StripeServer, payment_method: str = "pm_card_visa") -> None:
    """Save a card the way the billing page does (Checkout in setup mode), as the default."""
    from marketplace.billing import gateway

    billing = services.billing_for(person.account)
    gateway.setup_session(billing, success_url="http://x/ok", cancel_url="http://x/no")
    sessions = server.objects("checkout_sessions")
    session_id = next(
        k for k, v in sessions.items() if v["status"] == "open" and v["mode"] == "setup"
    )
    server.control(f"checkout/sessions/{session_id}/complete", payment_method=payment_method)
    gateway.set_default_payment_method(billing.stripe_customer_id, payment_method)
    BillingAccount.objects.filter(pk=billing.pk).update(has_payment_method=True)


def connected(owner: Any, server: StripeServer) -> Any:
    """Onboard ``owner`` (a user or an account) as Stripe would after they finish the form,
    and apply the resulting account.updated the way the webhook handler does."""
    from marketplace.earnings import connect

    account = owner if isinstance(owner, Account) else owner.account
    actor = account.user or User.objects.filter(memberships__account=account).first()
    connected_account = connect.connected_for(account, actor=actor)
    server.control(f"accounts/{connected_account.stripe_account_id}/complete", "POST")
    connect.account_updated({"id": connected_account.stripe_account_id})
    connected_account.refresh_from_db()
    assert connected_account.ready
    return connected_account
