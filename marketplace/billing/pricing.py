"""Prices: what a prediction may cost at most (reserved when it is created) and what it did cost.

A version with a flat ``unit_price`` is charged that price per prediction or per output item,
instead of hardware time (like Replicate's officially priced models). Every other version is
charged its hardware's ``price_per_second`` plus the owner's ``markup_per_second`` for the seconds
it ran, at most the prediction timeout. Amounts are exact ``Decimal`` dollars rounded half-up to
six places (micro-dollars).

The owner's part of a charge (``Charge.owner_part``) is the flat price, or the markup's share of
the time; what the owner earns from it is decided in ``marketplace.earnings``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings

from marketplace.catalog.models import Hardware, Version

MICRO = Decimal("0.000001")
MILLI = Decimal("0.001")
ZERO = Decimal(0)


def money(value: Decimal) -> Decimal:
    return value.quantize(MICRO, rounding=ROUND_HALF_UP)


def max_seconds() -> Decimal:
    return Decimal(settings.PREDICTION_TIMEOUT)


def max_output_items() -> int:
    return int(settings.BILLING_MAX_OUTPUT_ITEMS)


def is_flat(version: Version) -> bool:
    return version.unit_price is not None


def per_second(version: Version, hardware: Hardware) -> Decimal:
    """What a second of ``version`` on ``hardware`` costs its payer: hardware plus markup."""
    return hardware.price_per_second + version.markup_per_second


def worst_case(version: Version, hardware: Hardware, *, training: bool = False) -> Decimal:
    """The most a prediction (or a training) of ``version`` on ``hardware`` can cost."""
    if training:
        return money(hardware.price_per_second * max_seconds())
    if version.unit_price is not None:
        units = 1 if version.price_unit == Version.PriceUnit.PREDICTION else max_output_items()
        return money(version.unit_price * units)
    return money(per_second(version, hardware) * max_seconds())


@dataclass(frozen=True)
class Charge:
    seconds: Decimal
    units: int
    amount: Decimal
    # The owner's part of ``amount``: the flat price, or the markup's share of the time.
    owner_part: Decimal = ZERO


def billable_seconds(predict_time: Any) -> Decimal:
    """Seconds to bill from ``metrics.predict_time``: milliseconds, never above the timeout."""
    try:
        seconds = Decimal(str(predict_time)).quantize(MILLI, rounding=ROUND_HALF_UP)
    except (ArithmeticError, ValueError, TypeError):
        return ZERO
    if not seconds.is_finite() or seconds < 0:
        return ZERO
    return min(seconds, max_seconds())


def output_items(output: Any) -> int:
    if output is None:
        return 0
    if isinstance(output, list):
        return len(output)
    return 1


def charge(
    version: Version,
    hardware: Hardware,
    *,
    status: str,
    predict_time: Any,
    output: Any,
    training: bool = False,
) -> Charge:
    """What a prediction that ran cost. Flat prices apply to succeeded predictions only; hardware
    time is charged whatever the outcome (the machine was busy either way). A training costs its
    hardware's time only: a version's flat price and its creator's markup are prices of runs."""
    seconds = billable_seconds(predict_time)
    if training:
        return Charge(seconds, 0, money(hardware.price_per_second * seconds))
    if version.unit_price is None:
        # Rounded once each, so the owner's part never exceeds the amount (rounding is monotone).
        amount = money(per_second(version, hardware) * seconds)
        return Charge(seconds, 0, amount, money(version.markup_per_second * seconds))
    if status != "succeeded":
        return Charge(seconds, 0, ZERO)
    if version.price_unit == Version.PriceUnit.PREDICTION:
        units = 1
    else:
        units = min(output_items(output), max_output_items())
    amount = money(version.unit_price * units)
    return Charge(seconds, units, amount, amount)


def quote(version: Version) -> dict[str, Any]:
    """The prices of ``version`` as the API and pages show them (decimal strings, USD)."""
    hardware = version.model.default_hardware
    markup = version.markup_per_second
    data: dict[str, Any] = {
        "version": version.id,
        "model": version.model.full_name,
        "currency": "usd",
        "hardware": {
            "sku": hardware.sku,
            "name": hardware.name,
            "price_per_second": str(hardware.price_per_second.normalize()),
        },
        "max_seconds": int(max_seconds()),
        "max_cost": str(worst_case(version, hardware)),
    }
    if version.unit_price is not None:
        data["pricing"] = "per_" + (
            "prediction" if version.price_unit == Version.PriceUnit.PREDICTION else "output_item"
        )
        data["unit_price"] = str(money(version.unit_price))
        if version.price_unit == Version.PriceUnit.OUTPUT_ITEM:
            data["max_output_items"] = max_output_items()
    else:
        data["pricing"] = "per_second"
        # One price for the payer; the creator's part of it is shown, not added on top.
        data["price_per_second"] = str(per_second(version, hardware).normalize())
        if markup:
            data["creator_markup_per_second"] = str(markup.normalize())
    return data


def price_summary(version: Version) -> str:
    """One line for a model page, e.g. "$0.000100 per second on CPU" or "$0.01 per image"; a
    creator's markup is part of the per-second price and named as such."""
    if version.unit_price is not None:
        unit = "prediction" if version.price_unit == Version.PriceUnit.PREDICTION else "output"
        return f"${plain(version.unit_price)} per {unit}"
    hardware = version.model.default_hardware
    line = f"${plain(per_second(version, hardware))} per second on {hardware.name}"
    if version.markup_per_second:
        line += f" (includes ${plain(version.markup_per_second)} for the model's creator)"
    return line


def plain(value: Decimal) -> str:
    """Dollars without trailing zeros but with at least cents: 25.93, 0.000005, 4.50."""
    text = format(value.normalize(), "f")
    whole, _, fraction = text.partition(".")
    return f"{whole}.{fraction.ljust(2, '0')}"
