"""Billing: the usage ledger (the source of truth for money), credits, reservations, caps,
invoice runs and the Stripe webhook inbox.

Money is ``Decimal`` US dollars with six decimal places everywhere in the ledger; only invoice
lines are rounded, once, to integer cents (what Stripe charges).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone

from marketplace.accounts.models import Account, ApiToken
from marketplace.catalog.models import Hardware, Model, Version


def money_field(**options: Any) -> models.DecimalField:
    """US dollars to the micro-dollar (the precision of Prediction.cost)."""
    return models.DecimalField(max_digits=14, decimal_places=6, **options)


class BillingAccount(models.Model):
    """The one row per account every money movement locks (``select_for_update``).

    Prepaid accounts run only what their credit balance covers. Postpaid accounts are invoiced
    from the ledger each period (and, with Stripe configured, need a saved card first). Credits
    are spent first in both modes.
    """

    class Mode(models.TextChoices):
        PREPAID = "prepaid"
        POSTPAID = "postpaid"

    account = models.OneToOneField(Account, on_delete=models.CASCADE, related_name="billing")
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.POSTPAID)
    credit_balance = money_field(default=Decimal(0), validators=[MinValueValidator(Decimal(0))])
    monthly_cap = money_field(
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal(0))],
        help_text="Most this account may spend in a calendar month (UTC); empty = no cap.",
    )
    stripe_customer_id = models.CharField(max_length=255, blank=True)
    has_payment_method = models.BooleanField(default=False)
    # Set when an invoice payment fails; paid predictions are refused until it is paid.
    payment_failed_invoice = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(credit_balance__gte=0), name="billing_credit_not_negative"
            ),
            models.UniqueConstraint(
                fields=["stripe_customer_id"],
                condition=~models.Q(stripe_customer_id=""),
                name="billing_unique_stripe_customer",
            ),
        ]

    def __str__(self) -> str:
        return f"billing for {self.account}"


class TokenCap(models.Model):
    """A monthly spend cap on one API token."""

    token = models.OneToOneField(ApiToken, on_delete=models.CASCADE, related_name="billing_cap")
    monthly_cap = money_field(validators=[MinValueValidator(Decimal(0))])

    def __str__(self) -> str:
        return f"cap {self.monthly_cap} on {self.token}"


class Reservation(models.Model):
    """The worst-case cost of a prediction that has not ended yet, held against balance and caps.

    Deleted (released) in the transaction that ends the prediction.
    """

    prediction = models.OneToOneField(
        "predictions.Prediction", on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    billing = models.ForeignKey(BillingAccount, on_delete=models.CASCADE, related_name="holds")
    token = models.ForeignKey(
        ApiToken, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    amount = money_field()
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"hold {self.amount} for {self.prediction_id}"


class InvoiceRun(models.Model):
    """One postpaid invoice for one account and period, pushed to Stripe step by step.

    Every step saves the Stripe id it got, so a run that failed half way resumes where it stopped
    (and the idempotency keys, built from our ids, make a repeated step harmless).
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        ITEMS_PUSHED = "items_pushed"
        INVOICE_CREATED = "invoice_created"
        FINALIZED = "finalized"
        PAID = "paid"
        PAYMENT_FAILED = "payment_failed"
        MISMATCH = "mismatch"
        EMPTY = "empty"

    billing = models.ForeignKey(BillingAccount, on_delete=models.CASCADE, related_name="runs")
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    total_cents = models.BigIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    stripe_invoice_id = models.CharField(max_length=255, blank=True)
    hosted_invoice_url = models.URLField(max_length=2000, blank=True)
    # Each payment attempt has its own idempotency key (Stripe replays a declined one).
    payment_attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-period_start"]
        constraints = [
            models.UniqueConstraint(
                fields=["billing", "period_start", "period_end"], name="billing_one_run_per_period"
            )
        ]

    def __str__(self) -> str:
        return f"invoice {self.pk} for {self.billing.account} ({self.status})"

    @property
    def total(self) -> Decimal:
        return Decimal(self.total_cents) / 100


class InvoiceLine(models.Model):
    run = models.ForeignKey(InvoiceRun, on_delete=models.CASCADE, related_name="lines")
    description = models.CharField(max_length=500)
    seconds = models.DecimalField(max_digits=18, decimal_places=3, default=Decimal(0))
    predictions = models.PositiveIntegerField(default=0)
    amount_cents = models.BigIntegerField()
    stripe_invoice_item_id = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.description


class UsageEntry(models.Model):
    """What one prediction cost: written once, in the transaction that ends it, never changed
    (except for pointing at the invoice run that billed it)."""

    prediction = models.OneToOneField(
        "predictions.Prediction", on_delete=models.PROTECT, related_name="usage"
    )
    billing = models.ForeignKey(BillingAccount, on_delete=models.PROTECT, related_name="usage")
    token = models.ForeignKey(
        ApiToken, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Who ran it: an organisation's ledger names the member acting for it.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    model = models.ForeignKey(Model, on_delete=models.PROTECT, related_name="+")
    version = models.ForeignKey(Version, on_delete=models.PROTECT, related_name="+")
    hardware = models.ForeignKey(Hardware, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=16)
    # "training" for a training's time (``Prediction.Kind``): its own entries on the ledger.
    kind = models.CharField(max_length=10, default="prediction")
    seconds = models.DecimalField(max_digits=12, decimal_places=3)
    price_per_second = models.DecimalField(max_digits=14, decimal_places=8)
    units = models.PositiveIntegerField(default=0)
    unit_price = money_field(null=True, blank=True)
    amount = money_field()
    # The part paid from prepaid credit; the rest is invoiced (postpaid).
    credit_applied = money_field(default=Decimal(0))
    invoice_run = models.ForeignKey(
        InvoiceRun, null=True, blank=True, on_delete=models.PROTECT, related_name="entries"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "usage entries"
        indexes = [
            models.Index(fields=["billing", "created_at"]),
            models.Index(fields=["model", "created_at"]),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(amount__gte=0)
                & models.Q(credit_applied__gte=0)
                & models.Q(credit_applied__lte=models.F("amount")),
                name="usage_amounts_consistent",
            )
        ]

    def __str__(self) -> str:
        return f"{self.prediction_id}: {self.amount}"

    @property
    def invoiceable(self) -> Decimal:
        return self.amount - self.credit_applied


class CreditGrant(models.Model):
    """Credit added to a balance: bought through Stripe Checkout, or granted by staff.

    ``(source, reference)`` is unique, so the same Checkout session can never credit twice.
    """

    class Source(models.TextChoices):
        CHECKOUT = "checkout"
        STAFF = "staff"

    billing = models.ForeignKey(BillingAccount, on_delete=models.PROTECT, related_name="grants")
    amount = money_field(validators=[MinValueValidator(Decimal("0.000001"))])
    source = models.CharField(max_length=16, choices=Source.choices)
    reference = models.CharField(max_length=255)
    note = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["source", "reference"], name="credit_once_per_source"),
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="credit_positive"),
        ]

    def __str__(self) -> str:
        return f"+{self.amount} ({self.source} {self.reference})"


class StripeEvent(models.Model):
    """The webhook inbox: one row per Stripe event id, so a redelivery is recognised."""

    id = models.CharField(primary_key=True, max_length=255)
    type = models.CharField(max_length=100)
    payload = models.JSONField()
    received_at = models.DateTimeField(default=timezone.now)
    processed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.id} {self.type}"
