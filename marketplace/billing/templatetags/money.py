"""``{{ amount|usd }}``: a dollar amount as people read it ($25.93, $0.000005), exact."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import template

from marketplace.billing.pricing import plain

register = template.Library()


@register.filter
def usd(value: Any) -> str:
    if value is None or value == "":
        return ""
    amount = Decimal(str(value))
    sign = "-" if amount < 0 else ""
    return f"{sign}${plain(abs(amount))}"
