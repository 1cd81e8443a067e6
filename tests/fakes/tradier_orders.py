"""Tradier's account and trading endpoints for ``FakeTradier``, in the documented shapes.

``TradierAccount(fake, "VA000001")`` (before ``fake.start()``) adds:

* ``POST   /accounts/{id}/orders``           place (or ``preview=true``) an equity order;
* ``GET    /accounts/{id}/orders``           the account's orders (``includeTags``);
* ``GET    /accounts/{id}/orders/{order}``   one order;
* ``DELETE /accounts/{id}/orders/{order}``   cancel;
* ``GET    /accounts/{id}/positions`` and ``/balances``.

Quirks kept: one order is an object and none is ``"null"``; tags only appear with
``includeTags=true``; quantities are floats; refusals are 400 with
``{"errors": {"error": "..."}}`` (a list when there are several). Tests drive the
market by hand: ``fill(order_id, quantity, price)``, ``set_status(...)``, and
script refusals with ``reject_next``. Every POST form is kept in ``forms``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from tests.fakes.tradier_server import FakeTradier, one_or_many

SIDES = {"buy", "sell", "sell_short", "buy_to_cover"}
TYPES = {"market", "limit", "stop", "stop_limit"}
DURATIONS = {"day", "gtc", "pre", "post"}
TAG_RE = re.compile(r"^[A-Za-z0-9-]{1,255}$")
LIVE = {"open", "partially_filled", "pending", "calculated", "accepted_for_bidding", "held"}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + "000Z"


def errors_body(messages: list[str]) -> dict[str, Any]:
    return {"errors": {"error": one_or_many(messages)}}


class TradierAccount:
    """One brokerage account at the fake, with an order book the test moves by hand."""

    def __init__(self, fake: FakeTradier, account_id: str = "VA000001") -> None:
        self.fake = fake
        self.account_id = account_id
        self.orders: dict[int, dict[str, Any]] = {}
        self.forms: list[dict[str, str]] = []  # every POST form that reached the handler
        self.reject_next: list[list[str]] = []  # scripted 400 refusals, in order
        self.positions: list[dict[str, Any]] = []
        self.unlisted: set[int] = set()  # orders the listing leaves out (old GTC orders)
        self.balances: dict[str, Any] = {}
        self.next_id = 1000
        base = f"/accounts/{account_id}"
        fake.route("POST", f"{base}/orders", self._place)
        fake.route("GET", f"{base}/orders", self._list)
        fake.route("GET", f"{base}/orders/{{order_id}}", self._get)
        fake.route("DELETE", f"{base}/orders/{{order_id}}", self._cancel)
        fake.route("GET", f"{base}/positions", self._positions)
        fake.route("GET", f"{base}/balances", self._balances)

    @property
    def orders_path(self) -> str:
        return f"/accounts/{self.account_id}/orders"

    def posts(self) -> int:
        """How many order POSTs the fake received (faulted ones included)."""
        return len(self.fake.calls(self.orders_path, "POST"))

    # -- driving the market -------------------------------------------------------------
    def add_order(self, **fields: Any) -> dict[str, Any]:
        """An order placed elsewhere (another session, a previous run)."""
        self.next_id += 1
        order = {
            "id": self.next_id,
            "type": "market",
            "symbol": "AAPL",
            "side": "buy",
            "quantity": 1.0,
            "status": "open",
            "duration": "day",
            "avg_fill_price": 0.0,
            "exec_quantity": 0.0,
            "last_fill_price": 0.0,
            "last_fill_quantity": 0.0,
            "remaining_quantity": 1.0,
            "create_date": _now(),
            "transaction_date": _now(),
            "class": "equity",
        }
        order.update(fields)
        order["remaining_quantity"] = float(order["quantity"]) - float(order["exec_quantity"])
        self.orders[int(order["id"])] = order
        return order

    def by_tag(self, tag: str) -> dict[str, Any]:
        return next(o for o in self.orders.values() if o.get("tag") == tag)

    def fill(self, order_id: int, quantity: float, price: float) -> dict[str, Any]:
        """Execute ``quantity`` more at ``price``: Tradier's cumulative fields move."""
        order = self.orders[order_id]
        done = float(order["exec_quantity"])
        total = done + quantity
        order["avg_fill_price"] = (float(order["avg_fill_price"]) * done + price * quantity) / total
        order["exec_quantity"] = total
        order["last_fill_price"] = price
        order["last_fill_quantity"] = float(quantity)
        order["remaining_quantity"] = float(order["quantity"]) - total
        order["status"] = "filled" if total >= float(order["quantity"]) else "partially_filled"
        order["transaction_date"] = _now()
        return order

    def set_status(self, order_id: int, status: str, **fields: Any) -> None:
        self.orders[order_id].update(status=status, transaction_date=_now(), **fields)

    # -- endpoints ----------------------------------------------------------------------
    def _refuse(self, request: web.Request, messages: list[str]) -> web.Response:
        return self.fake.render(request, errors_body(messages), status=400)

    async def _place(self, request: web.Request) -> Any:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.forms.append(form)
        if self.reject_next:
            return self._refuse(request, self.reject_next.pop(0))
        problems = self._validate(form)
        if problems:
            return self._refuse(request, problems)
        qty = float(form["quantity"])
        if form.get("preview") == "true":
            price = float(form.get("price") or form.get("stop") or 100.0)
            return {
                "order": {
                    "status": "ok",
                    "commission": 0.0,
                    "cost": qty * price,
                    "fees": 0.0,
                    "symbol": form["symbol"],
                    "quantity": qty,
                    "side": form["side"],
                    "type": form["type"],
                    "duration": form["duration"],
                    "result": True,
                    "price": price,
                    "order_cost": qty * price,
                    "margin_change": 0.0,
                    "request_date": _now(),
                    "extended_hours": False,
                    "class": "equity",
                    "strategy": "equity",
                    "day_trades": 0,
                }
            }
        fields: dict[str, Any] = {
            "type": form["type"],
            "symbol": form["symbol"],
            "side": form["side"],
            "quantity": qty,
            "duration": form["duration"],
            "status": "open",
        }
        for key in ("price", "stop"):
            if key in form:
                fields[key] = float(form[key])
        if "tag" in form:
            fields["tag"] = form["tag"]
        order = self.add_order(**fields)
        return {"order": {"id": order["id"], "status": "ok", "partner_id": "c4998eb7-fake"}}

    @staticmethod
    def _validate(form: dict[str, str]) -> list[str]:
        problems = []
        if form.get("class") != "equity":
            problems.append(f"Invalid class: {form.get('class')}")
        if not form.get("symbol"):
            problems.append("Symbol is required")
        if form.get("side") not in SIDES:
            problems.append(f"Invalid side: {form.get('side')}")
        try:
            if float(form.get("quantity", "0")) <= 0:
                problems.append("Quantity must be positive")
        except ValueError:
            problems.append("Invalid quantity")
        kind = form.get("type")
        if kind not in TYPES:
            problems.append(f"Invalid type: {kind}")
        if form.get("duration") not in DURATIONS:
            problems.append(f"Invalid duration: {form.get('duration')}")
        if kind in ("limit", "stop_limit") and not form.get("price"):
            problems.append("Price is required for limit orders")
        if kind in ("stop", "stop_limit") and not form.get("stop"):
            problems.append("Stop is required for stop orders")
        if kind in ("market", "stop") and form.get("price"):
            problems.append("Price is not allowed for this order type")
        if "tag" in form and not TAG_RE.match(form["tag"]):
            problems.append("Invalid tag")
        return problems

    def _shown(self, order: dict[str, Any], request: web.Request) -> dict[str, Any]:
        if request.query.get("includeTags") == "true":
            return order
        return {k: v for k, v in order.items() if k != "tag"}

    async def _list(self, request: web.Request) -> Any:
        shown = [self._shown(o, request) for i, o in self.orders.items() if i not in self.unlisted]
        return {"orders": {"order": one_or_many(shown)} if shown else "null"}

    def _lookup(self, request: web.Request) -> dict[str, Any]:
        try:
            return self.orders[int(request.match_info["order_id"])]
        except (KeyError, ValueError):
            raise web.HTTPNotFound(text="Order not found") from None

    async def _get(self, request: web.Request) -> Any:
        return {"order": self._shown(self._lookup(request), request)}

    async def _cancel(self, request: web.Request) -> Any:
        order = self._lookup(request)
        if order["status"] not in LIVE:
            return self._refuse(request, [f"Order {order['id']} is {order['status']}"])
        order.update(status="canceled", transaction_date=_now())
        return {"order": {"id": order["id"], "status": "ok"}}

    async def _positions(self, request: web.Request) -> Any:
        found = self.positions
        return {"positions": {"position": one_or_many(found)} if found else "null"}

    async def _balances(self, request: web.Request) -> Any:
        return {"balances": self.balances or "null"}


@asynccontextmanager
async def running_account(account_id: str) -> AsyncIterator[TradierAccount]:
    """A started ``FakeTradier`` with one account on it, closed afterwards."""
    server = FakeTradier()
    account = TradierAccount(server, account_id)
    await server.start()
    try:
        yield account
    finally:
        await server.close()
