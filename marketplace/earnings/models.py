"""Creator earnings: what owners earn when others run their priced models, and how it is paid.

- :class:`Earning` — one per usage entry that pays an owner, written in the transaction that
  settles the prediction; immutable except for the payout that claims it.
- :class:`EarningReversal` — part of an earning taken back because the payer's payment was
  refunded or disputed; immutable except for what claims it.
- :class:`Payout` — one Stripe Transfer to an owner's connected account.
- :class:`TransferReversal` — one Stripe transfer reversal, taking back reversed earnings that
  were already paid out.
- :class:`ConnectedAccount` — the owner's Stripe Express account and its status.

Money is ``Decimal`` dollars to the micro-dollar, as in the billing ledger; only transfers are
whole cents. For each owner, ``Σ transferred cents = floor(100 * Σ money transferred)``: a payout
sends the cents that the running total has crossed, so sub-cent remainders carry to the next one.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from marketplace.accounts.models import Account
from marketplace.billing.models import UsageEntry, money_field
from marketplace.catalog.models import Model


class ConnectedAccount(models.Model):
    """An owner's Stripe Express account, kept in sync from ``account.updated`` webhooks."""

    account = models.OneToOneField(Account, on_delete=models.CASCADE, related_name="connect")
    stripe_account_id = models.CharField(max_length=255, unique=True)
    details_submitted = models.BooleanField(default=False)
    charges_enabled = models.BooleanField(default=False)
    payouts_enabled = models.BooleanField(default=False)
    # Stripe's ``capabilities.transfers``: transfers to the account need it "active".
    transfers_active = models.BooleanField(default=False)
    requirements_due = models.JSONField(default=list, blank=True)
    disabled_reason = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    synced_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.stripe_account_id} for {self.account}"

    @property
    def ready(self) -> bool:
        """Whether transfers can be sent to it."""
        return self.transfers_active

    @property
    def status(self) -> str:
        if self.ready and self.payouts_enabled:
            return "enabled"
        if self.ready:
            return "restricted"
        return "onboarding"


class Payout(models.Model):
    """One transfer of collected earnings to an owner's connected account.

    Created (claiming its earnings and reversals) in one transaction, then sent; sending is
    idempotent (key ``tr-<id>``, transfer group ``payout-<id>``), so a run that failed anywhere
    sends it again without a second transfer.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        PAID = "paid"

    owner = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="payouts")
    connected = models.ForeignKey(
        ConnectedAccount, on_delete=models.PROTECT, related_name="payouts"
    )
    # Net of what it claims: its earnings less the reversals netted into it.
    amount = money_field()
    amount_cents = models.PositiveBigIntegerField()
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    stripe_transfer_id = models.CharField(max_length=255, blank=True)
    # What Stripe reports reversed on the transfer (``transfer.reversed`` events).
    stripe_amount_reversed = models.PositiveBigIntegerField(default=0)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    paid_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount_cents__gt=0), name="payout_positive"),
            models.UniqueConstraint(
                fields=["stripe_transfer_id"],
                condition=~Q(stripe_transfer_id=""),
                name="payout_unique_transfer",
            ),
        ]

    def __str__(self) -> str:
        return f"payout {self.pk} to {self.owner}: {self.amount_cents} cents ({self.status})"

    @property
    def total(self) -> Decimal:
        return Decimal(self.amount_cents) / 100


class TransferReversal(models.Model):
    """Cents taken back from a paid payout's transfer (key ``trr-<id>``)."""

    payout = models.ForeignKey(Payout, on_delete=models.PROTECT, related_name="reversals")
    amount_cents = models.PositiveBigIntegerField()
    stripe_reversal_id = models.CharField(max_length=255, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"reversal of {self.amount_cents} cents of payout {self.payout_id}"

    @property
    def done(self) -> bool:
        return bool(self.stripe_reversal_id) or self.amount_cents == 0


class Earning(models.Model):
    """What a model's owner earns from one prediction another account paid for."""

    usage = models.OneToOneField(UsageEntry, on_delete=models.PROTECT, related_name="earning")
    owner = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="earnings")
    model = models.ForeignKey(Model, on_delete=models.PROTECT, related_name="+")
    # The payer's charge, the owner's part of it, the platform's fee on that part, and the rest.
    charged = money_field()
    owner_share = money_field()
    fee_percent = models.DecimalField(max_digits=5, decimal_places=2)
    fee = money_field()
    amount = money_field()
    payout = models.ForeignKey(
        Payout, null=True, blank=True, on_delete=models.PROTECT, related_name="earnings"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["owner", "created_at"]),
            models.Index(fields=["owner", "payout"]),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(fee__gte=0)
                & Q(amount__gte=0)
                & Q(owner_share=F("amount") + F("fee"))
                & Q(owner_share__lte=F("charged")),
                name="earning_amounts_consistent",
            )
        ]

    def __str__(self) -> str:
        return f"{self.owner}: {self.amount} from {self.usage_id}"


class EarningReversal(models.Model):
    """Part of an earning taken back; netted into the next payout, or clawed back from the
    transfer that paid it."""

    class Reason(models.TextChoices):
        REFUND = "refund"
        DISPUTE = "dispute"

    earning = models.ForeignKey(Earning, on_delete=models.PROTECT, related_name="reversals")
    owner = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="+")
    amount = money_field()
    reason = models.CharField(max_length=8, choices=Reason.choices)
    # The Stripe charge (refund) or dispute it answers.
    reference = models.CharField(max_length=255)
    payout = models.ForeignKey(
        Payout, null=True, blank=True, on_delete=models.PROTECT, related_name="netted"
    )
    transfer_reversal = models.ForeignKey(
        TransferReversal, null=True, blank=True, on_delete=models.PROTECT, related_name="items"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="reversal_positive"),
            models.CheckConstraint(
                condition=Q(payout__isnull=True) | Q(transfer_reversal__isnull=True),
                name="reversal_claimed_once",
            ),
        ]

    def __str__(self) -> str:
        return f"-{self.amount} of earning {self.earning_id} ({self.reason})"
