from __future__ import annotations

import uuid
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from marketplace.accounts.models import Account
from marketplace.billing import services
from marketplace.billing.models import CreditGrant


class Command(BaseCommand):
    help = "Grant prepaid credit (USD) to an account, e.g. `grant_credits alice 25 --note promo`."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("account")
        parser.add_argument("amount", help="Dollars, e.g. 25 or 12.50")
        parser.add_argument("--note", default="")
        parser.add_argument(
            "--reference",
            help="A unique reference; granting twice with the same one credits once",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        account = Account.objects.filter(username__iexact=options["account"]).first()
        if account is None:
            raise CommandError(f"account: no account named {options['account']!r}")
        try:
            amount = Decimal(options["amount"])
        except InvalidOperation as exc:
            raise CommandError("amount: must be a number of dollars") from exc
        if not amount.is_finite() or amount <= 0:
            raise CommandError("amount: must be positive")
        reference = options["reference"] or f"staff-{uuid.uuid4().hex}"
        grant, created = services.credits_grant(
            account,
            amount,
            source=CreditGrant.Source.STAFF,
            reference=reference,
            note=options["note"],
        )
        account.billing.refresh_from_db()
        verb = "Granted" if created else "Already granted"
        self.stdout.write(
            f"{verb} ${grant.amount} to {account.username}; "
            f"balance ${account.billing.credit_balance}"
        )
