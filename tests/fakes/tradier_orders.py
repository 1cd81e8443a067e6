"""Tradier's account and trading endpoints for ``FakeTradier``, in the documented shapes.

``TradierAccount(fake, "VA000001")`` (before ``fake.start()``) adds:

* ``POST   /accounts/{id}/orders``           place (or ``preview=true``) an order of
  ``class`` equity, option (``option_symbol``, ``buy_to_open``...) or multileg
  (``option_symbol[i]``/``side[i]``/``quantity[i]``, 2-4 legs, type
  market/debit/credit/even, a price for debit and credit);
* ``GET    /accounts/{id}/orders``           the account's orders (``includeTags``);
* ``GET    /accounts/{id}/orders/{order}``   one order;
* ``DELETE /accounts/{id}/orders/{order}``   cancel;
* ``GET    /accounts/{id}/positions`` and ``/balances``.

Quirks kept: one order is an object and none is ``"null"``; tags only appear with
``includeTags=true``; quantities are floats; refusals are 400 with
``{"errors": {"error": "..."}}`` (a list when there are several). A multileg order
carries ``num_legs``, ``strategy`` and its ``leg`` array (one leg: an object), each leg
with its own id, side, quantity, status and cumulative execution; the order's own
``exec_quantity`` is whole units of the spread and ``avg_fill_price`` the net per unit.
``string_numbers = True`` renders every number as a string (as Tradier's XML-born
JSON sometimes does).

Tests drive the market by hand: ``fill(order_id, quantity, price)`` (an equity or
option order), ``fill_leg(order_id, index, contracts, price)`` and
``fill_spread(order_id, units, prices)`` (a multileg order), ``set_status(...)``, and
script refusals with ``reject_next``. ``fill_mode`` fills at placement instead:
``"manual"`` (default: nothing until the test says), ``"immediate"`` (all of it) or
``"partial"`` (half, rounded down), at ``prices[symbol]`` (1.0 when not set). Every POST
form is kept in ``forms``.
"""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Literal

from aiohttp import web

from tests.fakes.tradier_server import FakeTradier, one_or_many

SIDES = {"buy", "sell", "sell_short", "buy_to_cover"}
OPTION_SIDES = {"buy_to_open", "buy_to_close", "sell_to_open", "sell_to_close"}
TYPES = {"market", "limit", "stop", "stop_limit"}
MULTILEG_TYPES = {"market", "debit", "credit", "even"}
OCC_RE = re.compile(r"^([A-Z][A-Z0-9]{0,5})(\d{6})([CP])(\d{8})$")
STRATEGIES = {2: "spread", 3: "butterfly", 4: "condor"}
FillMode = Literal["manual", "immediate", "partial"]
DURATIONS = {"day", "gtc", "pre", "post"}
TAG_RE = re.compile(r"^[A-Za-z0-9-]{1,255}$")
LIVE = {"open", "partially_filled", "pending", "calculated", "accepted_for_bidding", "held"}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + "000Z"


def errors_body(messages: list[str]) -> dict[str, Any]:
    return {"errors": {"error": one_or_many(messages)}}


def _stringify(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict):
        return {k: _stringify(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_stringify(v) for v in value]
    return value


def _quantity(raw: str | None) -> float | None:
    """A positive whole number of contracts, else None."""
    try:
        value = float(raw or "")
    except ValueError:
        return None
    return value if value > 0 and value.is_integer() else None


def _occ_problems(symbol: str | None, underlying: str | None, where: str = "") -> list[str]:
    match = OCC_RE.match(symbol or "")
    if match is None:
        return [f"Invalid option_symbol{where}: {symbol}"]
    if underlying and not match.group(1).startswith(underlying.upper()):
        return [f"Option symbol {symbol} does not belong to {underlying}"]
    return []


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
        self.fill_mode: FillMode = "manual"
        self.prices: dict[str, float] = {}  # symbol or OCC -> fill price for fill_mode
        self.string_numbers = False  # render numbers as strings
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
        for leg in self.orders[order_id].get("leg", []):
            if leg["status"] in LIVE:
                leg.update(status=status, transaction_date=_now())

    def fill_leg(self, order_id: int, index: int, contracts: float, price: float) -> dict[str, Any]:
        """Execute ``contracts`` more of leg ``index`` of a multileg order at ``price``:
        the leg's cumulative fields move, and the order's (whole units, net average)."""
        order = self.orders[order_id]
        leg = order["leg"][index]
        done = float(leg["exec_quantity"])
        total = done + contracts
        leg["avg_fill_price"] = (float(leg["avg_fill_price"]) * done + price * contracts) / total
        leg["exec_quantity"] = total
        leg["last_fill_price"] = price
        leg["last_fill_quantity"] = float(contracts)
        leg["remaining_quantity"] = float(leg["quantity"]) - total
        leg["status"] = "filled" if total >= float(leg["quantity"]) else "partially_filled"
        leg["transaction_date"] = _now()
        self._roll_up(order)
        return order

    def fill_spread(self, order_id: int, units: float, prices: list[float]) -> dict[str, Any]:
        """Execute ``units`` more of a multileg order: each leg its ratio x units, at its price."""
        order = self.orders[order_id]
        for index, (leg, price) in enumerate(zip(order["leg"], prices, strict=True)):
            ratio = float(leg["quantity"]) / float(order["quantity"])
            self.fill_leg(order_id, index, ratio * units, price)
        return order

    @staticmethod
    def _roll_up(order: dict[str, Any]) -> None:
        """A multileg order's own fields from its legs'."""
        legs, units = order["leg"], float(order["quantity"])
        ratios = [float(leg["quantity"]) / units for leg in legs]
        whole = min(
            math.floor(float(leg["exec_quantity"]) / r) for leg, r in zip(legs, ratios, strict=True)
        )
        net = sum(
            (1 if leg["side"].startswith("buy") else -1) * r * float(leg["avg_fill_price"])
            for leg, r in zip(legs, ratios, strict=True)
        )
        if whole > float(order["exec_quantity"]):
            order["last_fill_quantity"] = whole - float(order["exec_quantity"])
            order["last_fill_price"] = round(abs(net), 6)
            order["avg_fill_price"] = round(abs(net), 6)
            order["exec_quantity"] = float(whole)
        order["remaining_quantity"] = units - float(order["exec_quantity"])
        if all(leg["status"] == "filled" for leg in legs):
            order["status"] = "filled"
        elif any(float(leg["exec_quantity"]) > 0 for leg in legs):
            order["status"] = "partially_filled"
        order["transaction_date"] = _now()

    def add_multileg(
        self, legs: list[tuple[str, str, float]], *, symbol: str = "SPY", **fields: Any
    ) -> dict[str, Any]:
        """A multileg order (placed elsewhere, or by ``_place``): ``legs`` as
        (option_symbol, side, contracts); the order's quantity is their common divisor."""
        quantities = [int(q) for _, _, q in legs]
        units = math.gcd(*quantities)
        kind = fields.get("type", "market")
        base: dict[str, Any] = {
            "type": kind,
            "symbol": symbol,
            "side": "sell" if kind == "credit" else "buy",
            "quantity": float(units),
            "class": "multileg",
            "num_legs": len(legs),
            "strategy": STRATEGIES.get(len(legs), "freeform"),
        }
        order = self.add_order(**(base | fields))
        order["leg"] = [
            {
                "id": order["id"] + 1 + i,
                "type": kind,
                "symbol": symbol,
                "side": side,
                "quantity": float(qty),
                "status": order["status"],
                "duration": order["duration"],
                "avg_fill_price": 0.0,
                "exec_quantity": 0.0,
                "last_fill_price": 0.0,
                "last_fill_quantity": 0.0,
                "remaining_quantity": float(qty),
                "create_date": order["create_date"],
                "transaction_date": order["transaction_date"],
                "class": "option",
                "option_symbol": occ,
                **({"price": order["price"]} if "price" in order else {}),
            }
            for i, (occ, side, qty) in enumerate(legs)
        ]
        self.next_id += len(legs)  # legs have ids of their own
        return order

    def _auto_fill(self, order: dict[str, Any]) -> None:
        if self.fill_mode == "manual":
            return
        share = 1.0 if self.fill_mode == "immediate" else 0.5
        if "leg" in order:
            for index, leg in enumerate(order["leg"]):
                contracts = math.floor(float(leg["quantity"]) * share)
                price = self.prices.get(leg["option_symbol"], 1.0)
                if contracts:
                    self.fill_leg(order["id"], index, contracts, price)
            return
        quantity = math.floor(float(order["quantity"]) * share)
        symbol = order.get("option_symbol") or order["symbol"]
        if quantity:
            self.fill(order["id"], quantity, self.prices.get(symbol, 1.0))

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
        if form["class"] == "multileg":
            return self._place_multileg(form)
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
                    "class": form["class"],
                    "strategy": form["class"],
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
        if form["class"] == "option":
            fields.update({"class": "option", "option_symbol": form["option_symbol"]})
        order = self.add_order(**fields)
        self._auto_fill(order)
        return {"order": {"id": order["id"], "status": "ok", "partner_id": "c4998eb7-fake"}}

    def _place_multileg(self, form: dict[str, str]) -> Any:
        legs = [
            (form[f"option_symbol[{i}]"], form[f"side[{i}]"], float(form[f"quantity[{i}]"]))
            for i in range(len(_leg_indexes(form)))
        ]
        if form.get("preview") == "true":
            price = float(form.get("price") or 0.0)
            return {
                "order": {
                    "status": "ok",
                    "commission": 0.0,
                    "cost": price * 100 * math.gcd(*(int(q) for _, _, q in legs)),
                    "fees": 0.0,
                    "symbol": form["symbol"],
                    "type": form["type"],
                    "duration": form["duration"],
                    "result": True,
                    "price": price,
                    "class": "multileg",
                    "strategy": STRATEGIES.get(len(legs), "freeform"),
                    "request_date": _now(),
                }
            }
        fields: dict[str, Any] = {"type": form["type"], "duration": form["duration"]}
        if form.get("price"):
            fields["price"] = float(form["price"])
        if "tag" in form:
            fields["tag"] = form["tag"]
        order = self.add_multileg(legs, symbol=form["symbol"], **fields)
        self._auto_fill(order)
        return {"order": {"id": order["id"], "status": "ok", "partner_id": "c4998eb7-fake"}}

    @staticmethod
    def _validate(form: dict[str, str]) -> list[str]:
        kind = form.get("class")
        if kind not in ("equity", "option", "multileg"):
            return [f"Invalid class: {kind}"]
        problems = []
        if not form.get("symbol"):
            problems.append("Symbol is required")
        if form.get("duration") not in DURATIONS:
            problems.append(f"Invalid duration: {form.get('duration')}")
        if "tag" in form and not TAG_RE.match(form["tag"]):
            problems.append("Invalid tag")
        if kind == "multileg":
            return problems + _multileg_problems(form)
        if kind == "option":
            problems += _occ_problems(form.get("option_symbol"), form.get("symbol"))
        if form.get("side") not in (OPTION_SIDES if kind == "option" else SIDES):
            problems.append(f"Invalid side: {form.get('side')}")
        try:
            if float(form.get("quantity", "0")) <= 0:
                problems.append("Quantity must be positive")
        except ValueError:
            problems.append("Invalid quantity")
        if kind == "option" and _quantity(form.get("quantity")) is None:
            problems.append("Option quantity must be a whole number of contracts")
        kind = form.get("type")
        if kind not in TYPES:
            problems.append(f"Invalid type: {kind}")
        if kind in ("limit", "stop_limit") and not form.get("price"):
            problems.append("Price is required for limit orders")
        if kind in ("stop", "stop_limit") and not form.get("stop"):
            problems.append("Stop is required for stop orders")
        if kind in ("market", "stop") and form.get("price"):
            problems.append("Price is not allowed for this order type")
        return problems

    def _shown(self, order: dict[str, Any], request: web.Request) -> dict[str, Any]:
        shown = dict(order)
        if request.query.get("includeTags") != "true":
            shown.pop("tag", None)
        if "leg" in shown:  # Tradier's one-or-many: a single leg is an object
            shown["leg"] = one_or_many(shown["leg"])
        return _stringify(shown) if self.string_numbers else shown

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
        self.set_status(order["id"], "canceled")
        return {"order": {"id": order["id"], "status": "ok"}}

    async def _positions(self, request: web.Request) -> Any:
        found = [_stringify(p) if self.string_numbers else p for p in self.positions]
        return {"positions": {"position": one_or_many(found)} if found else "null"}

    async def _balances(self, request: web.Request) -> Any:
        return {"balances": self.balances or "null"}


def _leg_indexes(form: dict[str, str]) -> list[int]:
    found = re.findall(r"^option_symbol\[(\d+)\]$", "\n".join(form), flags=re.MULTILINE)
    return sorted(int(i) for i in found)


def _multileg_problems(form: dict[str, str]) -> list[str]:
    """Tradier's checks of a ``class=multileg`` form: 2-4 legs indexed from 0, each an
    OCC symbol of the underlying with an option side and whole contracts; the type's price."""
    problems = []
    indexes = _leg_indexes(form)
    if not 2 <= len(indexes) <= 4:
        problems.append(f"Multileg orders require 2 to 4 legs, got {len(indexes)}")
    if indexes != list(range(len(indexes))):
        problems.append("Leg indexes must start at 0 and be consecutive")
        return problems
    symbols = []
    for i in indexes:
        occ = form.get(f"option_symbol[{i}]")
        symbols.append(occ)
        problems += _occ_problems(occ, form.get("symbol"), f"[{i}]")
        if form.get(f"side[{i}]") not in OPTION_SIDES:
            problems.append(f"Invalid side[{i}]: {form.get(f'side[{i}]')}")
        if _quantity(form.get(f"quantity[{i}]")) is None:
            problems.append(f"Invalid quantity[{i}]: {form.get(f'quantity[{i}]')}")
    if len(set(symbols)) != len(symbols):
        problems.append("Legs must have distinct option symbols")
    kind = form.get("type")
    if kind not in MULTILEG_TYPES:
        problems.append(f"Invalid type: {kind}")
    elif kind in ("debit", "credit") and not form.get("price"):
        problems.append(f"Price is required for {kind} orders")
    elif kind in ("market", "even") and form.get("price"):
        problems.append("Price is not allowed for this order type")
    if form.get("stop"):
        problems.append("Stop is not allowed for multileg orders")
    return problems


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
