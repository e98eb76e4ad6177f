"""Payouts: collected earnings to owners' connected accounts as Stripe Transfers, and clawbacks
of reversed earnings that were already paid out, as transfer reversals.

Every step is a row first and a Stripe call second. ``payout_create`` claims an owner's
collected earnings (and the reversals of those earnings) in one transaction under the owner's
``ConnectedAccount`` row lock; ``payout_send`` then makes the transfer with the idempotency key
``tr-<payout>`` and transfer group ``payout-<payout>``, after looking for a transfer an earlier
attempt may have made (keys expire after a day; the group does not). A run that failed anywhere
is simply run again: unsent payouts and clawbacks are sent first, and nothing is sent twice.

Cents: an owner's transfers always total ``floor(100 * money transferred)``, so a payout sends
the whole cents its earnings take that total across, and sub-cent remainders carry over.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from marketplace.billing import gateway
from marketplace.earnings import ledger
from marketplace.earnings.models import (
    ConnectedAccount,
    Earning,
    EarningReversal,
    Payout,
    TransferReversal,
)

logger = logging.getLogger(__name__)
ZERO = Decimal(0)


def floor_cents(amount: Decimal) -> int:
    return int((amount * 100).to_integral_value(rounding=ROUND_FLOOR))


def min_payout_cents() -> int:
    return int(Decimal(settings.EARNINGS_MIN_PAYOUT) * 100)


def transferred(owner_id: int) -> tuple[Decimal, int]:
    """(money, cents) sent to the owner so far, net of what was clawed back."""
    sent = Payout.objects.filter(owner_id=owner_id).aggregate(
        money=Coalesce(Sum("amount"), ZERO), cents=Coalesce(Sum("amount_cents"), 0)
    )
    back_money = EarningReversal.objects.filter(
        owner_id=owner_id, transfer_reversal__isnull=False
    ).aggregate(s=Coalesce(Sum("amount"), ZERO))["s"]
    back_cents = TransferReversal.objects.filter(payout__owner_id=owner_id).aggregate(
        s=Coalesce(Sum("amount_cents"), 0)
    )["s"]
    return sent["money"] - back_money, sent["cents"] - back_cents


def payout_create(connected: ConnectedAccount, *, cutoff: datetime) -> Payout | None:
    """Claim the owner's collected, unpaid earnings before ``cutoff`` into a payout, if they
    reach the minimum payout."""
    with transaction.atomic():
        connected = ConnectedAccount.objects.select_for_update().get(pk=connected.pk)
        if not connected.ready:
            return None
        owner_id = connected.account_id
        earnings = dict(
            Earning.objects.filter(owner_id=owner_id, payout__isnull=True, created_at__lt=cutoff)
            .filter(ledger.collected())
            .values_list("pk", "amount")
        )
        if not earnings:
            return None
        reversals = dict(
            EarningReversal.objects.filter(
                earning_id__in=list(earnings), payout__isnull=True, transfer_reversal__isnull=True
            ).values_list("pk", "amount")
        )
        net = sum(earnings.values(), ZERO) - sum(reversals.values(), ZERO)
        money_sent, cents_sent = transferred(owner_id)
        cents = floor_cents(money_sent + net) - cents_sent
        if cents <= 0 or cents < min_payout_cents():
            return None
        payout = Payout.objects.create(
            owner_id=owner_id,
            connected=connected,
            amount=net,
            amount_cents=cents,
            currency=settings.BILLING_CURRENCY,
        )
        claimed = Earning.objects.filter(pk__in=list(earnings), payout__isnull=True).update(
            payout=payout
        )
        assert claimed == len(earnings), "earnings were claimed twice"
        EarningReversal.objects.filter(pk__in=list(reversals)).update(payout=payout)
    return payout


def payout_send(payout_id: int) -> Payout | None:
    """Make the payout's transfer, once; a failure is recorded and retried by the next run."""
    with transaction.atomic():
        payout = (
            Payout.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("connected")
            .filter(pk=payout_id, status=Payout.Status.PENDING)
            .first()
        )
        if payout is None:
            return None  # sent already, or being sent by another run
        try:
            transfer_id = gateway.transfer_find(payout.pk) or gateway.transfer_create(
                destination=payout.connected.stripe_account_id,
                amount_cents=payout.amount_cents,
                payout_id=payout.pk,
                currency=payout.currency,
            )
        except gateway.StripeError as exc:
            payout.attempts += 1
            payout.last_error = str(exc.user_message or exc) or type(exc).__name__
            payout.save(update_fields=["attempts", "last_error"])
            logger.warning("payout %s not sent (%s); the next run retries it", payout.pk, exc)
            return payout
        _mark_paid(payout, transfer_id)
    return payout


def _mark_paid(payout: Payout, transfer_id: str) -> None:
    payout.status = Payout.Status.PAID
    payout.stripe_transfer_id = transfer_id
    payout.paid_at = timezone.now()
    payout.last_error = ""
    payout.save(update_fields=["status", "stripe_transfer_id", "paid_at", "last_error"])


def clawback_create(owner_id: int) -> list[TransferReversal]:
    """Turn reversals of earnings already paid out into transfer reversals: first from the
    transfers that paid those earnings, then (for the odd cent of rounding) the newest others."""
    with transaction.atomic():
        ConnectedAccount.objects.select_for_update().filter(account_id=owner_id).first()
        pending = list(
            EarningReversal.objects.filter(
                owner_id=owner_id,
                payout__isnull=True,
                transfer_reversal__isnull=True,
                earning__payout__status=Payout.Status.PAID,
            ).select_related("earning")
        )
        if not pending:
            return []
        money_sent, cents_sent = transferred(owner_id)
        total = sum((r.amount for r in pending), ZERO)
        left = cents_sent - floor_cents(money_sent - total)
        own = {r.earning.payout_id for r in pending}
        paid = list(
            Payout.objects.filter(owner_id=owner_id, status=Payout.Status.PAID)
            .annotate(back=Coalesce(Sum("reversals__amount_cents"), 0))
            .order_by("-created_at", "-id")
        )
        rows: list[TransferReversal] = []
        for payout in sorted(paid, key=lambda p: p.pk not in own):
            take = min(left, payout.amount_cents - payout.back)  # type: ignore[attr-defined]
            if take > 0:
                rows.append(TransferReversal.objects.create(payout=payout, amount_cents=take))
                left -= take
        if left:
            raise RuntimeError(f"owner {owner_id}: {left} cents to claw back exceed what was paid")
        if not rows:  # less than a cent: recorded, nothing to send
            first = next(p for p in paid if p.pk in own)
            rows.append(TransferReversal.objects.create(payout=first, amount_cents=0))
        EarningReversal.objects.filter(pk__in=[r.pk for r in pending]).update(
            transfer_reversal=rows[0]
        )
    return rows


def clawback_send(reversal_id: int) -> TransferReversal | None:
    with transaction.atomic():
        reversal = (
            TransferReversal.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("payout")
            .filter(pk=reversal_id, stripe_reversal_id="", amount_cents__gt=0)
            .first()
        )
        if reversal is None or not reversal.payout.stripe_transfer_id:
            return reversal
        transfer = reversal.payout.stripe_transfer_id
        try:
            found = gateway.transfer_reversal_find(transfer, reversal.pk)
            reversal.stripe_reversal_id = found or gateway.transfer_reverse(
                transfer, amount_cents=reversal.amount_cents, reversal_id=reversal.pk
            )
            reversal.last_error = ""
        except gateway.StripeError as exc:
            reversal.attempts += 1
            reversal.last_error = str(exc.user_message or exc) or type(exc).__name__
            logger.warning("transfer reversal %s not sent (%s)", reversal.pk, exc)
        reversal.save(update_fields=["stripe_reversal_id", "attempts", "last_error"])
    return reversal


def claw_back(owner_id: int) -> list[TransferReversal]:
    """Claw back what refunds took from an owner's paid-out earnings (the refund job)."""
    clawback_create(owner_id)
    unsent = TransferReversal.objects.filter(
        payout__owner_id=owner_id, stripe_reversal_id="", amount_cents__gt=0
    ).values_list("pk", flat=True)
    return [r for pk in list(unsent) if (r := clawback_send(pk)) is not None]


@dataclass
class RunReport:
    payouts: list[Payout] = field(default_factory=list)
    clawbacks: list[TransferReversal] = field(default_factory=list)

    @property
    def failed(self) -> list[Payout]:
        return [p for p in self.payouts if p.status != Payout.Status.PAID]


def payouts_run(*, now: datetime | None = None) -> RunReport:
    """The periodic run: resume what earlier runs left unsent, claw back reversed earnings
    that were paid out, then pay every ready owner's collected earnings."""
    cutoff = now or timezone.now()
    report = RunReport()
    for pk in Payout.objects.filter(status=Payout.Status.PENDING).values_list("pk", flat=True):
        if (payout := payout_send(pk)) is not None:
            report.payouts.append(payout)
    owners = (
        EarningReversal.objects.filter(
            payout__isnull=True,
            transfer_reversal__isnull=True,
            earning__payout__status=Payout.Status.PAID,
        )
        .values_list("owner_id", flat=True)
        .distinct()
    )
    for owner_id in list(owners):
        clawback_create(owner_id)
    unsent = TransferReversal.objects.filter(stripe_reversal_id="", amount_cents__gt=0)
    for pk in unsent.values_list("pk", flat=True):
        if (reversal := clawback_send(pk)) is not None:
            report.clawbacks.append(reversal)
    for connected in ConnectedAccount.objects.filter(transfers_active=True).order_by("pk"):
        payout = payout_create(connected, cutoff=cutoff)
        if payout is not None:
            report.payouts.append(payout_send(payout.pk) or payout)
    return report


def transfer_seen(transfer_id: str) -> None:
    """A ``transfer.*`` event: re-read the transfer and record what our rows missed (a
    transfer whose sender crashed before saving its id, reversals, amounts reversed)."""
    transfer = gateway.transfer_retrieve(transfer_id)
    if transfer.payout_id is None:
        return
    with transaction.atomic():
        payout = (
            Payout.objects.select_for_update(of=("self",))
            .select_related("connected")
            .filter(pk=transfer.payout_id)
            .first()
        )
        if (
            payout is None
            or payout.connected.stripe_account_id != transfer.destination
            or payout.amount_cents != transfer.amount
        ):
            logger.warning("transfer %s matches no payout of ours", transfer.id)
            return
        if payout.status == Payout.Status.PENDING:
            _mark_paid(payout, transfer.id)
        if transfer.amount_reversed > payout.stripe_amount_reversed:
            payout.stripe_amount_reversed = transfer.amount_reversed
            payout.save(update_fields=["stripe_amount_reversed"])
        for reversal_id, ours in transfer.reversals:
            if ours is not None:
                TransferReversal.objects.filter(
                    pk=ours, payout=payout, stripe_reversal_id=""
                ).update(stripe_reversal_id=reversal_id)
