"""Postpaid invoicing: one invoice per account and period, built from the ledger.

``invoice_run_create`` claims the period's unbilled entries and rounds each line once to cents.
``invoice_run_push`` then walks the run through Stripe step by step, saving every id it gets, so
it can be called again after any failure and continues where it stopped.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from django.db import transaction

from marketplace.billing import gateway
from marketplace.billing.models import BillingAccount, InvoiceLine, InvoiceRun, UsageEntry

logger = logging.getLogger(__name__)
Status = InvoiceRun.Status


def to_cents(amount: Decimal) -> int:
    return int((amount * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def invoice_run_create(billing: BillingAccount, start: datetime, end: datetime) -> InvoiceRun:
    """The run for [start, end); creating it claims that period's not-yet-invoiced entries."""
    with transaction.atomic():
        BillingAccount.objects.select_for_update().get(pk=billing.pk)
        run, created = InvoiceRun.objects.get_or_create(
            billing=billing, period_start=start, period_end=end
        )
        if not created:
            return run
        entries = list(
            UsageEntry.objects.select_for_update()
            .filter(
                billing=billing,
                invoice_run__isnull=True,
                created_at__gte=start,
                created_at__lt=end,
            )
            .select_related("model__owner", "hardware")
        )
        groups: dict[tuple[str, str], list[UsageEntry]] = defaultdict(list)
        for entry in entries:
            groups[(entry.model.full_name, entry.hardware.name)].append(entry)
        total = 0
        for (model_name, hardware_name), group in sorted(groups.items()):
            amount = sum((e.invoiceable for e in group), Decimal(0))
            cents = to_cents(amount)
            if cents == 0:
                continue
            seconds = sum((e.seconds for e in group), Decimal(0))
            InvoiceLine.objects.create(
                run=run,
                description=(
                    f"{model_name} on {hardware_name}: {len(group)} predictions, {seconds} s"
                ),
                seconds=seconds,
                predictions=len(group),
                amount_cents=cents,
            )
            total += cents
        UsageEntry.objects.filter(pk__in=[e.pk for e in entries]).update(invoice_run=run)
        run.total_cents = total
        run.status = Status.PENDING if total else Status.EMPTY
        run.save(update_fields=["total_cents", "status"])
    return run


def invoice_run_push(run: InvoiceRun) -> InvoiceRun:
    """Create, check, finalize and pay the run's Stripe invoice; safe to call again."""
    if run.status in (Status.EMPTY, Status.PAID, Status.MISMATCH):
        return run
    billing = run.billing
    customer = gateway.ensure_customer(billing)
    if not run.stripe_invoice_id:
        run.stripe_invoice_id = gateway.invoice_create(
            customer,
            run_id=run.pk,
            description=f"Usage {run.period_start:%Y-%m-%d} to {run.period_end:%Y-%m-%d}",
        )
        run.status = Status.INVOICE_CREATED
        run.save(update_fields=["stripe_invoice_id", "status"])
    for line in run.lines.filter(stripe_invoice_item_id=""):
        line.stripe_invoice_item_id = gateway.invoice_item_create(
            customer,
            invoice=run.stripe_invoice_id,
            amount_cents=line.amount_cents,
            description=line.description,
            line_id=line.pk,
        )
        line.save(update_fields=["stripe_invoice_item_id"])
    if run.status == Status.INVOICE_CREATED:
        run.status = Status.ITEMS_PUSHED
        run.save(update_fields=["status"])
    state = gateway.invoice_finalize(run.stripe_invoice_id, run_id=run.pk)
    if state.total != run.total_cents:
        # Something else is on the invoice (or an item is missing): never charge a wrong total.
        run.status = Status.MISMATCH
        run.last_error = f"Stripe total {state.total} != ledger total {run.total_cents} cents"
        run.save(update_fields=["status", "last_error"])
        logger.error("invoice run %s: %s", run.pk, run.last_error)
        return run
    run.hosted_invoice_url = state.hosted_invoice_url
    if run.status != Status.PAYMENT_FAILED:
        run.status = Status.FINALIZED
    run.save(update_fields=["status", "hosted_invoice_url"])
    if state.status == "paid":
        return invoice_paid(state.id) or run
    run.payment_attempts += 1
    run.save(update_fields=["payment_attempts"])
    try:
        state = gateway.invoice_pay(
            run.stripe_invoice_id, run_id=run.pk, attempt=run.payment_attempts
        )
    except gateway.PaymentDeclined as exc:
        invoice_payment_failed(run.stripe_invoice_id, str(exc))
        run.refresh_from_db()
        return run
    if state.status == "paid":
        return invoice_paid(state.id) or run
    return run


def invoice_paid(invoice_id: str) -> InvoiceRun | None:
    """Paid: the run is done, and a block this invoice caused is lifted."""
    with transaction.atomic():
        run = InvoiceRun.objects.select_for_update().filter(stripe_invoice_id=invoice_id).first()
        if run is None:
            return None
        run.status = Status.PAID
        run.last_error = ""
        run.save(update_fields=["status", "last_error"])
        BillingAccount.objects.filter(pk=run.billing_id, payment_failed_invoice=invoice_id).update(
            payment_failed_invoice=""
        )
    return run


def invoice_payment_failed(invoice_id: str, reason: str = "") -> InvoiceRun | None:
    """Failed: paid predictions are refused until this invoice is paid."""
    with transaction.atomic():
        run = InvoiceRun.objects.select_for_update().filter(stripe_invoice_id=invoice_id).first()
        if run is None or run.status == Status.PAID:
            return run
        run.status = Status.PAYMENT_FAILED
        run.last_error = reason or "The payment failed"
        run.save(update_fields=["status", "last_error"])
        BillingAccount.objects.filter(pk=run.billing_id).update(payment_failed_invoice=invoice_id)
    return run


UNFINISHED = [
    Status.PENDING,
    Status.INVOICE_CREATED,
    Status.ITEMS_PUSHED,
    Status.FINALIZED,
    Status.PAYMENT_FAILED,
]


def _push(run: InvoiceRun) -> InvoiceRun:
    try:
        return invoice_run_push(run)
    except gateway.StripeError as exc:
        run.last_error = str(exc.user_message or exc)
        run.save(update_fields=["last_error"])
        logger.warning("invoice run %s stopped (%s); it resumes on the next run", run.pk, exc)
        return run


def invoice_period(start: datetime, end: datetime) -> list[InvoiceRun]:
    """Resume every unfinished run (a failed step, a declined payment), then invoice every
    postpaid account with unbilled usage in [start, end)."""
    runs = [
        _push(run)
        for run in InvoiceRun.objects.filter(status__in=UNFINISHED).select_related("billing")
    ]
    billing_ids = (
        UsageEntry.objects.filter(
            invoice_run__isnull=True,
            created_at__gte=start,
            created_at__lt=end,
            billing__mode=BillingAccount.Mode.POSTPAID,
        )
        .values_list("billing_id", flat=True)
        .distinct()
    )
    for billing in BillingAccount.objects.filter(pk__in=list(billing_ids)):
        run = invoice_run_create(billing, start, end)
        if run.status in UNFINISHED and run not in runs:
            runs.append(_push(run))
    return runs
