from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from marketplace.billing import pricing
from marketplace.catalog.models import Hardware, Version


def _dollars(value: str, field: str) -> Decimal:
    try:
        amount = Decimal(value)
    except InvalidOperation as exc:
        raise CommandError(f"{field}: {value!r} is not a number of dollars") from exc
    if not amount.is_finite() or amount < 0:
        raise CommandError(f"{field}: must be zero or more")
    return amount


class Command(BaseCommand):
    help = (
        "Set prices (staff): `set_price --hardware cpu 0.000100` (dollars per second), or "
        "`set_price alice/hello:<id> 0.01 --per output_item|prediction`, or "
        "`set_price alice/hello --clear` (back to hardware time), or "
        "`set_price alice/hello --markup 0.0001` (the owner's dollars per second on top of "
        "hardware time; 0 removes it). A version ref without an id "
        "means its latest version."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("target", help="owner/name[:version] or, with --hardware, a SKU")
        parser.add_argument("price", nargs="?")
        parser.add_argument("--hardware", action="store_true")
        parser.add_argument(
            "--per", choices=list(Version.PriceUnit.values), default=Version.PriceUnit.PREDICTION
        )
        parser.add_argument("--clear", action="store_true")
        parser.add_argument("--markup", help="Dollars per second paid to the owner")

    def handle(self, *args: Any, **options: Any) -> None:
        target, price = options["target"], options["price"]
        if options["hardware"]:
            if price is None:
                raise CommandError("price: required (dollars per second)")
            updated = Hardware.objects.filter(sku=target).update(
                price_per_second=_dollars(price, "price")
            )
            if not updated:
                raise CommandError(f"hardware: no SKU {target!r}")
            self.stdout.write(f"{target}: ${price} per second")
            return
        version = Version.objects.resolve(target)
        if version is None:
            raise CommandError(f"version: {target!r} not found")
        fields = []
        if options["markup"] is not None:
            version.markup_per_second = _dollars(options["markup"], "markup")
            fields.append("markup_per_second")
        if options["clear"]:
            version.unit_price = None
            fields += ["unit_price"]
        elif price is not None:
            version.unit_price = _dollars(price, "price")
            version.price_unit = options["per"]
            fields += ["unit_price", "price_unit"]
        elif not fields:
            raise CommandError("price: required (or --clear, or --markup)")
        version.save(update_fields=fields)
        self.stdout.write(f"{version}: {pricing.price_summary(version)}")
