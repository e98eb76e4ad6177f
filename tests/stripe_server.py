"""A small Stripe-compatible HTTP server for tests, written from Stripe's public API reference.

It serves the part of the API the billing app calls, statefully and in memory: customers,
Checkout sessions (setup and payment mode), billing portal sessions, setup intents, invoice items
and invoices (create, retrieve, finalize, pay), and — in tests/stripe_connect.py — connected
accounts, account links, transfers, transfer reversals, charges, invoice payments, refunds and
disputes, with Stripe's error shapes and idempotency-key replay. Events are signed the way
Stripe signs them (``Stripe-Signature: t=…,v1=HMAC-SHA256``) and POSTed to the webhook URL
registered through ``/_test/webhook``.

Test-only controls (no authentication) live under ``/_test/``: register the webhook
(``connect=true`` for the Connect endpoint), complete a Checkout session as the customer would,
redeliver an event, complete or reopen a connected account's onboarding, open a dispute, inject
failures (``faults``: an error answer, or a request done whose answer is lost), forget
idempotency keys, read the request log and the state.

Run: ``python tests/stripe_server.py --port 12345`` (prints ``ready`` when it listens).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import html
import json
import re
import secrets
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

try:
    from stripe_connect import Connect, StripeError, integer, require
except ImportError:  # imported as tests.stripe_server rather than run as a script
    from tests.stripe_connect import Connect, StripeError, integer, require

# Stripe's test payment methods: declined when saved, or saved fine and declined when charged.
DECLINED_AT_ATTACH = {"pm_card_visa_chargeDeclined"}
DECLINING = DECLINED_AT_ATTACH | {"pm_card_chargeCustomerFail"}
API_VERSION = "2026-10-28.endive"


def new_id(prefix: str) -> str:
    return f"{prefix}_test_{secrets.token_hex(12)}"


def parse_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's form encoding: ``a[b][0][c]=v`` → ``{"a": {"b": [{"c": "v"}]}}``."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = re.findall(r"[^\[\]]+|\[\]", key)
        node = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
    return _listify(root)


def _listify(node: Any) -> Any:
    if isinstance(node, dict):
        if node and all(k.isdigit() for k in node):
            return [_listify(node[k]) for k in sorted(node, key=int)]
        return {k: _listify(v) for k, v in node.items()}
    return node


_int, _require = integer, require


class State(Connect):
    def __init__(self, base_url: str):
        self.base_url = base_url
        self.lock = threading.RLock()
        self.objects: dict[str, dict[str, dict[str, Any]]] = {}
        self.idempotency: dict[str, tuple[str, int, dict[str, Any]]] = {}
        self.requests: list[dict[str, Any]] = []
        self.events: dict[str, dict[str, Any]] = {}
        self.deliveries: list[dict[str, Any]] = []
        self.webhook: dict[str, str] = {}
        # The Connect endpoint: events about connected accounts (they carry ``account``).
        self.connect_webhook: dict[str, str] = {}
        # Injected failures: {"verb", "match" (a path regex), "mode" (error|disconnect),
        # "times"}.
        self.faults: list[dict[str, Any]] = []

    def table(self, name: str) -> dict[str, dict[str, Any]]:
        return self.objects.setdefault(name, {})

    def get(self, name: str, obj_id: str) -> dict[str, Any]:
        obj = self.table(name).get(obj_id)
        if obj is None:
            raise StripeError(
                404, f"No such {name.rstrip('s')}: '{obj_id}'", code="resource_missing"
            )
        return obj

    # --- events ---------------------------------------------------------------------------
    def emit(
        self,
        type_: str,
        obj: dict[str, Any],
        *,
        sync: bool = False,
        account: str | None = None,
        previous_attributes: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        event: dict[str, Any] = {
            "id": new_id("evt"),
            "object": "event",
            "api_version": API_VERSION,
            "created": int(time.time()),
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": type_,
            "data": {"object": json.loads(json.dumps(obj))},
        }
        if account:
            event["account"] = account
        if previous_attributes is not None:
            event["data"]["previous_attributes"] = previous_attributes
        self.events[event["id"]] = event
        if sync:
            self.deliver(event["id"])
        else:
            threading.Thread(target=self.deliver, args=(event["id"],), daemon=True).start()
        return event

    def deliver(self, event_id: str, secret: str | None = None) -> int:
        event = self.events[event_id]
        endpoint = self.connect_webhook if "account" in event else self.webhook
        if not endpoint:
            return 0
        payload = json.dumps(event, indent=2)
        timestamp = int(time.time())
        signature = hmac.new(
            (secret or endpoint["secret"]).encode(),
            f"{timestamp}.{payload}".encode(),
            hashlib.sha256,
        ).hexdigest()
        request = urllib.request.Request(
            endpoint["url"],
            data=payload.encode(),
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "Stripe-Signature": f"t={timestamp},v1={signature}",
                "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            },
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except OSError:
            status = -1
        with self.lock:
            self.deliveries.append({"event": event_id, "status": status})
        return status

    def fault_for(self, method: str, path: str) -> str | None:
        with self.lock:
            for fault in self.faults:
                if fault["verb"] == method and re.fullmatch(fault["match"], path):
                    fault["times"] -= 1
                    if fault["times"] <= 0:
                        self.faults.remove(fault)
                    return str(fault["mode"])
        return None

    # --- API ------------------------------------------------------------------------------
    def customer_create(self, p: dict[str, Any]) -> dict[str, Any]:
        customer = {
            "id": new_id("cus"),
            "object": "customer",
            "created": int(time.time()),
            "email": p.get("email"),
            "name": p.get("name"),
            "metadata": p.get("metadata", {}),
            "invoice_settings": {"default_payment_method": None},
            "livemode": False,
        }
        self.table("customers")[customer["id"]] = customer
        return customer

    def customer_update(self, obj_id: str, p: dict[str, Any]) -> dict[str, Any]:
        customer = self.get("customers", obj_id)
        for key, value in p.items():
            if isinstance(value, dict) and isinstance(customer.get(key), dict):
                customer[key].update(value)
            else:
                customer[key] = value
        pm = customer["invoice_settings"].get("default_payment_method")
        if pm and pm not in self.table("payment_methods"):
            raise StripeError(400, f"No such PaymentMethod: '{pm}'", param="invoice_settings")
        return customer

    def checkout_create(self, p: dict[str, Any]) -> dict[str, Any]:
        mode = _require(p, "mode")
        if mode not in ("payment", "setup"):
            raise StripeError(400, f"Invalid mode: {mode}", param="mode")
        _require(p, "success_url")
        customer = p.get("customer")
        if customer:
            self.get("customers", customer)
        amount_total = None
        currency = p.get("currency")
        if mode == "payment":
            items = p.get("line_items")
            if not isinstance(items, list) or not items:
                raise StripeError(
                    400, "line_items is required in payment mode.", param="line_items"
                )
            amount_total = 0
            for item in items:
                price = item.get("price_data") or {}
                amount_total += _int(price, "unit_amount") * int(item.get("quantity", 1))
                currency = _require(price, "currency")
        elif not currency and not p.get("payment_method_types"):
            raise StripeError(400, "currency is required in setup mode.", param="currency")
        session_id = "cs_test_" + secrets.token_hex(24)
        session = {
            "id": session_id,
            "object": "checkout.session",
            "mode": mode,
            "status": "open",
            "payment_status": "unpaid" if mode == "payment" else "no_payment_required",
            "customer": customer,
            "amount_total": amount_total,
            "currency": currency,
            "metadata": p.get("metadata", {}),
            "success_url": p["success_url"],
            "cancel_url": p.get("cancel_url"),
            "setup_intent": None,
            "payment_intent": None,
            "url": f"{self.base_url}/c/pay/{session_id}",
            "created": int(time.time()),
            "livemode": False,
        }
        self.table("checkout_sessions")[session_id] = session
        return session

    def checkout_complete(self, session_id: str, payment_method: str) -> dict[str, Any]:
        """What happens when the customer finishes the hosted Checkout page."""
        session = self.get("checkout_sessions", session_id)
        if session["status"] != "open":
            raise StripeError(400, "This Checkout session is no longer open.")
        if payment_method in DECLINED_AT_ATTACH:
            raise StripeError(402, "Your card was declined.", "card_error", code="card_declined")
        self.table("payment_methods")[payment_method] = {
            "id": payment_method,
            "object": "payment_method",
            "type": "card",
            "customer": session["customer"],
        }
        if session["mode"] == "setup":
            intent = {
                "id": new_id("seti"),
                "object": "setup_intent",
                "status": "succeeded",
                "customer": session["customer"],
                "payment_method": payment_method,
                "usage": "off_session",
            }
            self.table("setup_intents")[intent["id"]] = intent
            session["setup_intent"] = intent["id"]
        else:
            charge = self.charge_for(
                session["customer"], session["amount_total"], session["currency"], payment_method
            )
            session["payment_intent"] = charge["payment_intent"]
            session["payment_status"] = "paid"
        session["status"] = "complete"
        return self.emit("checkout.session.completed", session, sync=True)

    def portal_create(self, p: dict[str, Any]) -> dict[str, Any]:
        customer = self.get("customers", _require(p, "customer"))
        session = {
            "id": new_id("bps"),
            "object": "billing_portal.session",
            "customer": customer["id"],
            "return_url": p.get("return_url"),
            "url": f"{self.base_url}/p/session/{secrets.token_hex(16)}",
            "created": int(time.time()),
            "livemode": False,
        }
        self.table("billing_portal_sessions")[session["id"]] = session
        return session

    def invoiceitem_create(self, p: dict[str, Any]) -> dict[str, Any]:
        customer = self.get("customers", _require(p, "customer"))
        if "price" in p or "quantity" in p or "unit_amount_decimal" in p:
            raise StripeError(400, "This server supports only `amount` invoice items.")
        invoice_id = p.get("invoice")
        if invoice_id:
            invoice = self.get("invoices", invoice_id)
            if invoice["status"] != "draft":
                raise StripeError(400, "You can only add invoice items to draft invoices.")
            if invoice["customer"] != customer["id"]:
                raise StripeError(400, "The invoice belongs to another customer.")
        item = {
            "id": new_id("ii"),
            "object": "invoiceitem",
            "customer": customer["id"],
            "amount": _int(p, "amount"),
            "currency": _require(p, "currency"),
            "description": p.get("description"),
            "metadata": p.get("metadata", {}),
            "invoice": invoice_id,
            "date": int(time.time()),
            "livemode": False,
        }
        self.table("invoiceitems")[item["id"]] = item
        return item

    def invoice_create(self, p: dict[str, Any]) -> dict[str, Any]:
        customer = self.get("customers", _require(p, "customer"))
        invoice_id = new_id("in")
        invoice = {
            "id": invoice_id,
            "object": "invoice",
            "customer": customer["id"],
            "status": "draft",
            "auto_advance": p.get("auto_advance", "false") == "true",
            "collection_method": p.get("collection_method", "charge_automatically"),
            "description": p.get("description"),
            "metadata": p.get("metadata", {}),
            "currency": "usd",
            "number": None,
            "hosted_invoice_url": None,
            "amount_paid": 0,
            "created": int(time.time()),
            "livemode": False,
        }
        if p.get("pending_invoice_items_behavior", "exclude") == "include":
            for item in self.table("invoiceitems").values():
                if item["customer"] == customer["id"] and item["invoice"] is None:
                    item["invoice"] = invoice_id
        self.table("invoices")[invoice_id] = invoice
        return self.invoice_view(invoice_id)

    def invoice_view(self, invoice_id: str) -> dict[str, Any]:
        invoice = self.get("invoices", invoice_id)
        lines = [i for i in self.table("invoiceitems").values() if i["invoice"] == invoice_id]
        total = sum(i["amount"] for i in lines)
        return {
            **invoice,
            "subtotal": total,
            "total": total,
            "amount_due": total,
            "amount_remaining": total - invoice["amount_paid"],
            "lines": {
                "object": "list",
                "has_more": False,
                "data": [
                    {
                        "id": "il_" + i["id"],
                        "object": "line_item",
                        "amount": i["amount"],
                        "description": i["description"],
                    }
                    for i in lines
                ],
            },
        }

    def invoice_finalize(self, invoice_id: str) -> dict[str, Any]:
        invoice = self.get("invoices", invoice_id)
        if invoice["status"] != "draft":
            raise StripeError(400, "This invoice is already finalized, you can't re-finalize.")
        invoice["status"] = "open"
        invoice["number"] = f"TEST-{len(self.table('invoices')):04d}"
        invoice["hosted_invoice_url"] = f"{self.base_url}/i/{invoice_id}"
        view = self.invoice_view(invoice_id)
        self.emit("invoice.finalized", view)
        return view

    def invoice_pay(self, invoice_id: str) -> dict[str, Any]:
        invoice = self.get("invoices", invoice_id)
        if invoice["status"] == "draft":
            self.invoice_finalize(invoice_id)
        if invoice["status"] == "paid":
            raise StripeError(400, "Invoice is already paid.", code="invoice_already_paid")
        total = self.invoice_view(invoice_id)["total"]
        pm = self.get("customers", invoice["customer"])["invoice_settings"].get(
            "default_payment_method"
        )
        if total > 0 and not pm:
            raise StripeError(
                400,
                "This customer has no attached payment source or default payment method.",
                code="invoice_no_customer_line_items",
            )
        if total > 0 and pm in DECLINING:
            self.emit("invoice.payment_failed", self.invoice_view(invoice_id))
            raise StripeError(402, "Your card was declined.", "card_error", code="card_declined")
        if total > 0:
            self.invoice_payment_record(
                invoice, self.charge_for(invoice["customer"], total, invoice["currency"], pm)
            )
        invoice["status"] = "paid"
        invoice["amount_paid"] = total
        view = self.invoice_view(invoice_id)
        self.emit("invoice.paid", view)
        self.emit("invoice.payment_succeeded", view)
        return view


class Handler(BaseHTTPRequestHandler):
    state: State
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Request-Id", "req_" + secrets.token_hex(8))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _params(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode() if length else ""
        query = urlsplit(self.path).query
        return parse_form(parse_qsl(query, keep_blank_values=True) + parse_qsl(raw, True))

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        path = urlsplit(self.path).path
        params = self._params()
        state = self.state
        if path.startswith(("/c/pay/", "/p/session/", "/connect/onboarding/", "/express/")):
            with state.lock:
                self._hosted_page(method, path, params)
            return
        if path.startswith("/_test/"):
            with state.lock:
                try:
                    self._send(200, self._control(method, path, params))
                except StripeError as exc:
                    self._send(exc.status, exc.body)
            return
        auth = self.headers.get("Authorization", "")
        if not re.fullmatch(r"Bearer sk_(test|live)_\w{6,}", auth):
            self._send(
                401,
                {"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}},
            )
            return
        key = self.headers.get("Idempotency-Key") if method == "POST" else None
        fingerprint = f"{method} {path} {json.dumps(params, sort_keys=True)}"
        fault = state.fault_for(method, path)
        if fault == "error":
            self._send(500, {"error": {"type": "api_error", "message": "An error occurred."}})
            return
        with state.lock:
            state.requests.append(
                {"method": method, "path": path, "idempotency_key": key, "params": params}
            )
            if key and key in state.idempotency:
                seen, status, body = state.idempotency[key]
                if seen != fingerprint:
                    self._send(
                        400,
                        {
                            "error": {
                                "type": "idempotency_error",
                                "message": "Keys for idempotent requests can only be used with "
                                "the same parameters they were first used with.",
                            }
                        },
                    )
                else:
                    self._send(status, body, {"Idempotent-Replayed": "true"})
                return
            try:
                status, body = 200, self._route(method, path, params)
            except StripeError as exc:
                status, body = exc.status, exc.body
            if key and status < 500:
                state.idempotency[key] = (fingerprint, status, body)
        if fault == "disconnect":
            # Done, but the answer is lost on the way back (the client sees a broken connection).
            self.close_connection = True
            return
        self._send(status, body)

    def _route(self, method: str, path: str, p: dict[str, Any]) -> dict[str, Any]:
        s = self.state
        routes: list[tuple[str, str, Any]] = [
            *s.routes(p),
            ("POST", r"/v1/customers", lambda: s.customer_create(p)),
            ("GET", r"/v1/customers/(?P<id>[\w]+)", lambda i: s.get("customers", i)),
            ("POST", r"/v1/customers/(?P<id>[\w]+)", lambda i: s.customer_update(i, p)),
            ("POST", r"/v1/checkout/sessions", lambda: s.checkout_create(p)),
            ("GET", r"/v1/checkout/sessions/(?P<id>\w+)", lambda i: self._session(i, p)),
            ("POST", r"/v1/billing_portal/sessions", lambda: s.portal_create(p)),
            ("GET", r"/v1/setup_intents/(?P<id>\w+)", lambda i: s.get("setup_intents", i)),
            ("POST", r"/v1/invoiceitems", lambda: s.invoiceitem_create(p)),
            ("POST", r"/v1/invoices", lambda: s.invoice_create(p)),
            ("GET", r"/v1/invoices/(?P<id>\w+)", lambda i: s.invoice_view(i)),
            ("POST", r"/v1/invoices/(?P<id>\w+)/finalize", lambda i: s.invoice_finalize(i)),
            ("POST", r"/v1/invoices/(?P<id>\w+)/pay", lambda i: s.invoice_pay(i)),
        ]
        for route_method, pattern, action in routes:
            match = re.fullmatch(pattern, path)
            if match and route_method == method:
                return action(*match.groups())
        raise StripeError(404, f"Unrecognized request URL ({method}: {path}).")

    def _hosted_page(self, method: str, path: str, p: dict[str, Any]) -> None:
        """Stand-ins for Stripe's hosted Checkout, portal, Connect onboarding and Express
        dashboard pages (for browser tests)."""
        onboarding = re.fullmatch(r"/connect/onboarding/(\w+)", path)
        if onboarding is not None:
            status, body, location = self.state.onboarding_page(method, onboarding.group(1), p)
            if location:
                self.send_response(303)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self._html(status, body)
            return
        if path.startswith("/express/"):
            self._html(200, "<h1>Express dashboard (test)</h1>")
            return
        match = re.fullmatch(r"/c/pay/(\w+)", path)
        if match is None:
            self._html(200, "<h1>Billing portal (test)</h1>")
            return
        try:
            session = self.state.get("checkout_sessions", match.group(1))
            if method == "POST":
                self.state.checkout_complete(session["id"], p.get("payment_method", "pm_card_visa"))
                self.send_response(303)
                self.send_header("Location", session["success_url"])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        except StripeError as exc:
            self._html(exc.status, f"<p role=alert>{html.escape(exc.body['error']['message'])}</p>")
            return
        if session["mode"] == "payment":
            what = f"Pay ${session['amount_total'] / 100:.2f}"
        else:
            what = "Save card"
        self._html(
            200,
            f"<h1>Test checkout</h1><form method=post>"
            f"<label>Card <select name=payment_method><option>pm_card_visa</option>"
            f"<option>pm_card_chargeCustomerFail</option>"
            f"<option>pm_card_visa_chargeDeclined</option></select></label>"
            f"<button type=submit>{what}</button></form>",
        )

    def _html(self, status: int, body: str) -> None:
        data = f"<!doctype html><title>Stripe test</title>{body}".encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _session(self, session_id: str, p: dict[str, Any]) -> dict[str, Any]:
        session = dict(self.state.get("checkout_sessions", session_id))
        expand = p.get("expand") or []
        if "setup_intent" in expand and session["setup_intent"]:
            session["setup_intent"] = self.state.get("setup_intents", session["setup_intent"])
        return session

    def _control(self, method: str, path: str, p: dict[str, Any]) -> Any:
        s = self.state
        if path == "/_test/webhook" and method == "POST":
            endpoint = {"url": _require(p, "url"), "secret": _require(p, "secret")}
            if p.get("connect") == "true":
                s.connect_webhook = endpoint
            else:
                s.webhook = endpoint
            return {"ok": True}
        if path == "/_test/faults" and method == "POST":
            mode = _require(p, "mode")
            if mode not in ("error", "disconnect"):
                raise StripeError(400, "mode: error or disconnect")
            s.faults.append(
                {
                    "verb": _require(p, "verb"),
                    "match": _require(p, "match"),
                    "mode": mode,
                    "times": int(p.get("times", 1)),
                }
            )
            return {"ok": True}
        if path == "/_test/idempotency/clear" and method == "POST":
            # Stripe forgets idempotency keys after 24 hours.
            s.idempotency.clear()
            return {"ok": True}
        match = re.fullmatch(r"/_test/accounts/(\w+)/(complete|require)", path)
        if match and method == "POST":
            return s.account_set(match.group(1), complete=match.group(2) == "complete")
        match = re.fullmatch(r"/_test/charges/(\w+)/dispute", path)
        if match and method == "POST":
            return s.dispute_open(match.group(1), p)
        match = re.fullmatch(r"/_test/checkout/sessions/(\w+)/complete", path)
        if match and method == "POST":
            event = s.checkout_complete(match.group(1), p.get("payment_method", "pm_card_visa"))
            return {"event": event, "deliveries": s.deliveries[-1:]}
        match = re.fullmatch(r"/_test/events/(\w+)/deliver", path)
        if match and method == "POST":
            if match.group(1) not in s.events:
                raise StripeError(404, "No such event")
            return {"status": s.deliver(match.group(1), p.get("secret"))}
        if path == "/_test/requests":
            return s.requests
        if path == "/_test/state":
            return {"objects": s.objects, "events": s.events, "deliveries": s.deliveries}
        raise StripeError(404, f"Unknown control {method} {path}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    Handler.state = State(f"http://127.0.0.1:{args.port}")
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print("ready", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        sys.exit(0)


if __name__ == "__main__":
    main()
