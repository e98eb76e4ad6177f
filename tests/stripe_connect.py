"""Stripe Connect and money movement for the loopback Stripe server (tests/stripe_server.py),
written from Stripe's public API reference:

- Connected accounts (``POST/GET /v1/accounts``; Express accounts with the ``transfers``
  capability requested), Account Links (``POST /v1/account_links``, ``account_onboarding``)
  with a hosted onboarding page, and Express dashboard login links.
- Transfers (``POST/GET /v1/transfers``, ``GET /v1/transfers/{id}``) and transfer reversals
  (``POST/GET /v1/transfers/{id}/reversals``), with ``transfer.created`` and
  ``transfer.reversed`` events.
- Charges behind invoice payments and Checkout payments, ``GET /v1/charges/{id}``,
  ``GET /v1/invoice_payments`` (by invoice or by payment intent), refunds (``POST /v1/refunds``
  → ``charge.refunded``) and disputes (``GET /v1/disputes/{id}``; a test control opens one →
  ``charge.dispute.created``).

Events about a connected account (``account.updated``) carry its id in ``account`` and go to
the Connect webhook endpoint, as Stripe sends them.
"""

from __future__ import annotations

import html
import secrets
import time
from typing import Any

ONBOARDING_DUE = [
    "business_type",
    "external_account",
    "individual.first_name",
    "individual.last_name",
    "tos_acceptance.date",
    "tos_acceptance.ip",
]


class StripeError(Exception):
    """An error answer in Stripe's shape (``{"error": {"type", "message", ...}}``)."""

    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", **extra):
        super().__init__(message)
        self.status = status
        self.body = {"error": {"type": type_, "message": message, **extra}}


def integer(params: dict[str, Any], name: str) -> int:
    try:
        return int(params[name])
    except KeyError as exc:
        raise StripeError(400, f"Missing required param: {name}.", param=name) from exc
    except ValueError as exc:
        raise StripeError(400, f"Invalid integer: {params[name]}", param=name) from exc


def require(params: dict[str, Any], name: str) -> Any:
    if name not in params or params[name] == "":
        raise StripeError(400, f"Missing required param: {name}.", param=name)
    return params[name]


def _now() -> int:
    return int(time.time())


def _list(url: str, data: list[dict[str, Any]]) -> dict[str, Any]:
    return {"object": "list", "data": data, "has_more": False, "url": url}


class Connect:
    """Mixed into ``State``: uses its ``table``, ``get``, ``emit`` and ``base_url``."""

    base_url: str
    table: Any
    get: Any
    emit: Any

    # --- connected accounts ---------------------------------------------------------------
    def account_create(self, p: dict[str, Any]) -> dict[str, Any]:
        kind = p.get("type", "express")
        if kind not in ("express", "standard", "custom"):
            raise StripeError(400, f"Invalid type: {kind}", param="type")
        requested = [
            name
            for name, value in (p.get("capabilities") or {}).items()
            if isinstance(value, dict) and value.get("requested") == "true"
        ]
        account = {
            "id": "acct_" + secrets.token_hex(8),
            "object": "account",
            "type": kind,
            "business_profile": p.get("business_profile", {}),
            "business_type": None,
            "capabilities": {name: "inactive" for name in requested},
            "charges_enabled": False,
            "payouts_enabled": False,
            "details_submitted": False,
            "country": p.get("country", "US"),
            "default_currency": "usd",
            "email": p.get("email"),
            "created": _now(),
            "metadata": p.get("metadata", {}),
            "requirements": {
                "currently_due": list(ONBOARDING_DUE),
                "eventually_due": list(ONBOARDING_DUE),
                "past_due": list(ONBOARDING_DUE),
                "pending_verification": [],
                "errors": [],
                "disabled_reason": "requirements.past_due",
                "current_deadline": None,
            },
            "tos_acceptance": {"date": None},
            "livemode": False,
        }
        self.table("accounts")[account["id"]] = account
        return account

    def account_link_create(self, p: dict[str, Any]) -> dict[str, Any]:
        account = self.get("accounts", require(p, "account"))
        kind = require(p, "type")
        if kind not in ("account_onboarding", "account_update"):
            raise StripeError(400, f"Invalid type: {kind}", param="type")
        token = secrets.token_hex(16)
        self.table("account_links")[token] = {
            "account": account["id"],
            "refresh_url": require(p, "refresh_url"),
            "return_url": require(p, "return_url"),
            "expires_at": _now() + 300,
            "used": False,
        }
        return {
            "object": "account_link",
            "created": _now(),
            "expires_at": _now() + 300,
            "url": f"{self.base_url}/connect/onboarding/{token}",
        }

    def login_link_create(self, account_id: str) -> dict[str, Any]:
        account = self.get("accounts", account_id)
        if account["type"] != "express":
            raise StripeError(400, "Login links are only available for Express accounts.")
        if not account["details_submitted"]:
            raise StripeError(400, "This account has not completed onboarding.")
        return {
            "object": "login_link",
            "created": _now(),
            "url": f"{self.base_url}/express/{secrets.token_hex(12)}",
        }

    def account_set(self, account_id: str, *, complete: bool) -> dict[str, Any]:
        """The owner finished onboarding (``complete``), or Stripe asks for more again."""
        account = self.get("accounts", account_id)
        previous = {
            key: account[key] for key in ("charges_enabled", "payouts_enabled", "details_submitted")
        }
        due = [] if complete else ["external_account"]
        account.update(
            charges_enabled=complete,
            payouts_enabled=complete,
            details_submitted=True,
        )
        account["capabilities"] = {
            name: "active" if complete else "inactive" for name in account["capabilities"]
        }
        account["requirements"].update(
            currently_due=due,
            eventually_due=due,
            past_due=due,
            disabled_reason=None if complete else "requirements.past_due",
        )
        account["tos_acceptance"] = {"date": _now()}
        self.emit("account.updated", account, account=account_id, previous_attributes=previous)
        return account

    def onboarding_page(self, method: str, token: str, p: dict[str, Any]) -> tuple[int, str, str]:
        """(status, html, redirect) of the hosted onboarding page behind an Account Link."""
        link = self.table("account_links").get(token)
        if link is None:
            return 404, "<p role=alert>This link is not valid.</p>", ""
        if link["used"] or link["expires_at"] < _now():
            return 303, "", link["refresh_url"]
        account = self.get("accounts", link["account"])
        if method == "POST":
            link["used"] = True
            if p.get("action") == "submit":
                self.account_set(account["id"], complete=True)
            return 303, "", link["return_url"]
        email = html.escape(account.get("email") or "")
        return (
            200,
            f"<h1>Stripe Express onboarding (test)</h1><p>Account {account['id']} {email}</p>"
            f"<form method=post><button name=action value=submit>Agree and submit</button>"
            f"<button name=action value=later>Save for later</button></form>",
            "",
        )

    # --- charges, invoice payments, refunds, disputes ---------------------------------------
    def charge_for(
        self, customer: str | None, amount: int, currency: str, payment_method: str
    ) -> dict[str, Any]:
        """A succeeded payment: its PaymentIntent and Charge."""
        intent_id = "pi_" + secrets.token_hex(12)
        charge = {
            "id": "ch_" + secrets.token_hex(12),
            "object": "charge",
            "amount": amount,
            "amount_captured": amount,
            "amount_refunded": 0,
            "captured": True,
            "paid": True,
            "refunded": False,
            "disputed": False,
            "status": "succeeded",
            "currency": currency,
            "customer": customer,
            "payment_intent": intent_id,
            "payment_method": payment_method,
            "created": _now(),
            "livemode": False,
        }
        self.table("charges")[charge["id"]] = charge
        self.table("payment_intents")[intent_id] = {
            "id": intent_id,
            "object": "payment_intent",
            "status": "succeeded",
            "amount": amount,
            "amount_received": amount,
            "currency": currency,
            "customer": customer,
            "payment_method": payment_method,
            "latest_charge": charge["id"],
        }
        return charge

    def invoice_payment_record(self, invoice: dict[str, Any], charge: dict[str, Any]) -> None:
        payment = {
            "id": "inpay_" + secrets.token_hex(12),
            "object": "invoice_payment",
            "amount_paid": charge["amount"],
            "amount_requested": charge["amount"],
            "currency": charge["currency"],
            "invoice": invoice["id"],
            "is_default": True,
            "payment": {"type": "payment_intent", "payment_intent": charge["payment_intent"]},
            "status": "paid",
            "status_transitions": {"paid_at": _now(), "canceled_at": None},
            "created": _now(),
            "livemode": False,
        }
        self.table("invoice_payments")[payment["id"]] = payment

    def invoice_payments_list(self, p: dict[str, Any]) -> dict[str, Any]:
        found = list(self.table("invoice_payments").values())
        if p.get("invoice"):
            found = [x for x in found if x["invoice"] == p["invoice"]]
        payment = p.get("payment") or {}
        if payment.get("payment_intent"):
            found = [
                x for x in found if x["payment"]["payment_intent"] == payment["payment_intent"]
            ]
        return _list("/v1/invoice_payments", found[: int(p.get("limit", 10))])

    def refund_create(self, p: dict[str, Any]) -> dict[str, Any]:
        if p.get("charge"):
            charge = self.get("charges", p["charge"])
        elif p.get("payment_intent"):
            intent = self.get("payment_intents", p["payment_intent"])
            charge = self.get("charges", intent["latest_charge"])
        else:
            raise StripeError(400, "One of charge or payment_intent is required.")
        left = charge["amount"] - charge["amount_refunded"]
        amount = int(p.get("amount", left))
        if amount <= 0 or amount > left:
            raise StripeError(
                400,
                f"Refund amount ({amount}) is greater than unrefunded amount on charge ({left})",
                param="amount",
            )
        refund = {
            "id": "re_" + secrets.token_hex(12),
            "object": "refund",
            "amount": amount,
            "charge": charge["id"],
            "payment_intent": charge["payment_intent"],
            "currency": charge["currency"],
            "reason": p.get("reason"),
            "status": "succeeded",
            "metadata": p.get("metadata", {}),
            "created": _now(),
        }
        self.table("refunds")[refund["id"]] = refund
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        self.emit("refund.created", refund)
        self.emit("charge.refunded", charge)
        return refund

    def dispute_open(self, charge_id: str, p: dict[str, Any]) -> dict[str, Any]:
        charge = self.get("charges", charge_id)
        dispute = {
            "id": "dp_" + secrets.token_hex(12),
            "object": "dispute",
            "amount": int(p.get("amount", charge["amount"] - charge["amount_refunded"])),
            "charge": charge["id"],
            "payment_intent": charge["payment_intent"],
            "currency": charge["currency"],
            "reason": p.get("reason", "fraudulent"),
            "status": "needs_response",
            "is_charge_refundable": False,
            "created": _now(),
            "livemode": False,
        }
        self.table("disputes")[dispute["id"]] = dispute
        charge["disputed"] = True
        self.emit("charge.dispute.created", dispute)
        return dispute

    # --- transfers ------------------------------------------------------------------------
    def transfer_create(self, p: dict[str, Any]) -> dict[str, Any]:
        amount = integer(p, "amount")
        if amount <= 0:
            raise StripeError(400, "Amount must be at least 1 cent.", param="amount")
        currency = require(p, "currency")
        destination = self.get("accounts", require(p, "destination"))
        if destination["capabilities"].get("transfers") != "active":
            raise StripeError(
                400,
                "Your destination account needs to have at least one of the following "
                "capabilities enabled: transfers, crypto_transfers, legacy_payments",
                code="insufficient_capabilities_for_transfer",
                param="destination",
            )
        transfer_id = "tr_" + secrets.token_hex(12)
        transfer = {
            "id": transfer_id,
            "object": "transfer",
            "amount": amount,
            "amount_reversed": 0,
            "currency": currency,
            "description": p.get("description"),
            "destination": destination["id"],
            "destination_payment": "py_" + secrets.token_hex(12),
            "metadata": p.get("metadata", {}),
            "reversed": False,
            "source_transaction": p.get("source_transaction"),
            "transfer_group": p.get("transfer_group"),
            "created": _now(),
            "livemode": False,
        }
        self.table("transfers")[transfer_id] = transfer
        view = self.transfer_view(transfer_id)
        self.emit("transfer.created", view)
        return view

    def transfer_view(self, transfer_id: str) -> dict[str, Any]:
        transfer = self.get("transfers", transfer_id)
        reversals = [
            r for r in self.table("transfer_reversals").values() if r["transfer"] == transfer_id
        ]
        url = f"/v1/transfers/{transfer_id}/reversals"
        return {**transfer, "reversals": {**_list(url, reversals), "total_count": len(reversals)}}

    def transfer_list(self, p: dict[str, Any]) -> dict[str, Any]:
        found = [self.transfer_view(t) for t in self.table("transfers")]
        for key in ("destination", "transfer_group"):
            if p.get(key):
                found = [t for t in found if t[key] == p[key]]
        found.sort(key=lambda t: t["created"], reverse=True)
        return _list("/v1/transfers", found[: int(p.get("limit", 10))])

    def transfer_reverse(self, transfer_id: str, p: dict[str, Any]) -> dict[str, Any]:
        transfer = self.get("transfers", transfer_id)
        left = transfer["amount"] - transfer["amount_reversed"]
        amount = int(p.get("amount", left))
        if amount <= 0 or amount > left:
            raise StripeError(
                400,
                f"You cannot reverse {amount} of this transfer: {left} can still be reversed.",
                param="amount",
            )
        reversal = {
            "id": "trr_" + secrets.token_hex(12),
            "object": "transfer_reversal",
            "amount": amount,
            "currency": transfer["currency"],
            "transfer": transfer_id,
            "destination_payment_refund": "pyr_" + secrets.token_hex(12),
            "metadata": p.get("metadata", {}),
            "created": _now(),
        }
        self.table("transfer_reversals")[reversal["id"]] = reversal
        transfer["amount_reversed"] += amount
        transfer["reversed"] = transfer["amount_reversed"] == transfer["amount"]
        self.emit("transfer.reversed", self.transfer_view(transfer_id))
        return reversal

    def routes(self, p: dict[str, Any]) -> list[tuple[str, str, Any]]:
        return [
            ("POST", r"/v1/accounts", lambda: self.account_create(p)),
            ("GET", r"/v1/accounts/(\w+)", lambda i: self.get("accounts", i)),
            ("POST", r"/v1/accounts/(\w+)/login_links", lambda i: self.login_link_create(i)),
            ("POST", r"/v1/account_links", lambda: self.account_link_create(p)),
            ("POST", r"/v1/transfers", lambda: self.transfer_create(p)),
            ("GET", r"/v1/transfers", lambda: self.transfer_list(p)),
            ("GET", r"/v1/transfers/(\w+)", lambda i: self.transfer_view(i)),
            ("POST", r"/v1/transfers/(\w+)/reversals", lambda i: self.transfer_reverse(i, p)),
            (
                "GET",
                r"/v1/transfers/(\w+)/reversals",
                lambda i: self.transfer_view(i)["reversals"],
            ),
            ("GET", r"/v1/charges/(\w+)", lambda i: self.get("charges", i)),
            ("GET", r"/v1/payment_intents/(\w+)", lambda i: self.get("payment_intents", i)),
            ("GET", r"/v1/invoice_payments", lambda: self.invoice_payments_list(p)),
            ("POST", r"/v1/refunds", lambda: self.refund_create(p)),
            ("GET", r"/v1/disputes/(\w+)", lambda i: self.get("disputes", i)),
        ]
