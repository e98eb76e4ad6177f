"""The earnings ledger: what an owner earns from a prediction, and what a refund takes back.

The rules:

- The owner's part of a charge is the version's flat price (per prediction or per output item),
  or the markup's share of hardware time (``pricing.Charge.owner_part``), never more than the
  payer was charged. The platform keeps ``EARNINGS_PLATFORM_FEE_PERCENT`` of it (half up, to the
  micro-dollar) and the hardware part; the owner earns the rest. ``split`` is the arithmetic, a
  pure function.
- No earning from the owner's own people or organisations: not when the payer is the owner, nor
  when the person who ran it is the owner or one of the owning organisation's members (whichever
  account they billed), nor when the payer is an organisation the owning user belongs to.
- An earning is *collected* once its payer paid for it: fully from credit, or on an invoice that
  was paid (or had nothing to charge). Only collected earnings are paid out.
- A refund or dispute of an invoice payment takes back the same share of every earning that
  invoice collected (``reverse_for_invoice``); shares are cumulative targets, so a redelivered
  event or a repeated refund of the same amount takes nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, Sum
from django.db.models.functions import Coalesce

from marketplace.accounts.models import Account, Membership
from marketplace.billing.models import InvoiceRun, UsageEntry
from marketplace.billing.pricing import money
from marketplace.earnings.models import Earning, EarningReversal

ZERO = Decimal(0)


@dataclass(frozen=True)
class Split:
    charged: Decimal
    owner_share: Decimal
    fee: Decimal
    earning: Decimal

    @property
    def platform(self) -> Decimal:
        """What the platform keeps: the hardware part and the fee."""
        return self.charged - self.earning


def split(charged: Decimal, owner_part: Decimal, fee_percent: Decimal) -> Split:
    """How a charge of ``charged`` divides when ``owner_part`` of it is the owner's."""
    owner_share = min(max(owner_part, ZERO), charged)
    fee = money(owner_share * fee_percent / 100)
    return Split(charged, owner_share, fee, owner_share - fee)


def fee_percent() -> Decimal:
    return Decimal(settings.EARNINGS_PLATFORM_FEE_PERCENT)


def earns(
    *, owner_id: int, owner_user_id: int | None, payer_id: int, runner_id: int | None
) -> bool:
    """Whether a run billed to ``payer_id`` by ``runner_id`` pays the owner (the rules above)."""
    if payer_id == owner_id or (runner_id is not None and runner_id == owner_user_id):
        return False
    related = Q()
    if runner_id is not None:
        related |= Q(account_id=owner_id, user_id=runner_id)
    if owner_user_id is not None:
        related |= Q(account_id=payer_id, user_id=owner_user_id)
    return not (related and Membership.objects.filter(related).exists())


def earning_record(entry: UsageEntry, *, owner_part: Decimal) -> Earning | None:
    """Write the owner's earning from a usage entry just written (same transaction)."""
    if owner_part <= 0 or entry.amount <= 0:
        return None
    owner_id, owner_user_id = (
        Account.objects.filter(owned_models=entry.model_id).values_list("pk", "user_id").get()
    )
    if not earns(
        owner_id=owner_id,
        owner_user_id=owner_user_id,
        payer_id=entry.billing.account_id,
        runner_id=entry.user_id,
    ):
        return None
    percent = fee_percent()
    parts = split(entry.amount, owner_part, percent)
    return Earning.objects.create(
        usage=entry,
        owner_id=owner_id,
        model_id=entry.model_id,
        charged=parts.charged,
        owner_share=parts.owner_share,
        fee_percent=percent,
        fee=parts.fee,
        amount=parts.earning,
        created_at=entry.created_at,
    )


SETTLED_RUNS = [InvoiceRun.Status.PAID, InvoiceRun.Status.EMPTY]


def collected(prefix: str = "") -> Q:
    """Earnings (``prefix`` leads from another model to one) whose payer has paid."""
    usage = f"{prefix}usage__"
    return Q(**{f"{usage}credit_applied": F(f"{usage}amount")}) | Q(
        **{f"{usage}invoice_run__status__in": SETTLED_RUNS}
    )


def reverse_for_invoice(
    invoice_id: str, *, taken_cents: int, charge_cents: int, reason: str, reference: str
) -> set[int]:
    """The payment of invoice ``invoice_id`` lost ``taken_cents`` of its ``charge_cents`` to
    refunds and disputes so far: take back that share of the invoiced part of every earning it
    collected. Returns the owners who lost something (their paid-out part is clawed back)."""
    owners: set[int] = set()
    if charge_cents <= 0 or taken_cents <= 0:
        return owners
    taken = min(taken_cents, charge_cents)
    with transaction.atomic():
        run = InvoiceRun.objects.select_for_update().filter(stripe_invoice_id=invoice_id).first()
        if run is None:
            return owners
        earnings = (
            Earning.objects.filter(usage__invoice_run=run)
            .select_related("usage")
            .annotate(taken=Coalesce(Sum("reversals__amount"), ZERO))
            .order_by("pk")
        )
        for earning in earnings:
            usage = earning.usage
            invoiced = usage.amount - usage.credit_applied
            if invoiced <= 0:
                continue
            target = money(earning.amount * invoiced * taken / (usage.amount * charge_cents))
            more = target - earning.taken  # type: ignore[attr-defined]
            if more > 0:
                EarningReversal.objects.create(
                    earning=earning,
                    owner_id=earning.owner_id,
                    amount=more,
                    reason=reason,
                    reference=reference,
                )
                owners.add(earning.owner_id)
    return owners
