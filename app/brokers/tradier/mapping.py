"""Tradier's wire format and ours: order statuses, the order forms (``class`` equity,
option, multileg), one order as the poller's typed ``OrderReport`` (a multileg order's
``leg`` array as ``LegReport``s), and what a failed call means (refused, unknown, retry).

Pure functions, so the quirks (numbers as strings, ``"null"``, a reason only
sometimes, ISO dates, one leg as an object rather than a list) are mapped and tested
in one place.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from app.brokers.base import BrokerError, BrokerTimeoutError
from app.brokers.legs import LegReport
from app.brokers.polling import OrderReport
from app.models.occ import is_occ, parse_occ
from app.models.orders import OPTION_SIDES, Intent, Order, OrderRequest, OrderStatus, OrderType
from app.tradier import normalize as tn
from app.tradier.client import TradierError, TradierRetryableError

TAG_RE = re.compile(r"^[A-Za-z0-9-]{1,255}$")
MIN_LEGS, MAX_LEGS = 2, 4  # what Tradier's multileg order takes

# Tradier's side of an option order -> our intent (``OPTION_SIDES`` the other way)
INTENTS: dict[str, Intent] = {side: intent for intent, side in OPTION_SIDES.items()}
# OCC roots whose underlying is another symbol (PM-settled weeklies of the indexes)
ROOTS = {"SPXW": "SPX", "NDXP": "NDX", "RUTW": "RUT", "VIXW": "VIX", "DJXW": "DJX"}

Form = dict[str, str | int | float | None]

# Tradier order status -> ours. Anything not listed is UNKNOWN (never acted on by the poller).
STATUSES: dict[str, OrderStatus] = {
    "pending": OrderStatus.SUBMITTED,
    "open": OrderStatus.SUBMITTED,
    "calculated": OrderStatus.SUBMITTED,
    "accepted_for_bidding": OrderStatus.SUBMITTED,
    "held": OrderStatus.SUBMITTED,
    "partially_filled": OrderStatus.PARTIALLY_FILLED,
    "filled": OrderStatus.FILLED,
    "expired": OrderStatus.EXPIRED,
    "canceled": OrderStatus.CANCELED,
    "rejected": OrderStatus.REJECTED,
    "error": OrderStatus.REJECTED,
}


def map_status(raw: Any) -> OrderStatus:
    return STATUSES.get(str(raw or "").strip().lower(), OrderStatus.UNKNOWN)


def underlying_of(occ: str) -> str:
    """The underlying Tradier files an OCC symbol's orders under (``SPXW...`` -> ``SPX``)."""
    root = parse_occ(occ).underlying
    return ROOTS.get(root, root)


def order_form(order: Order, *, preview: bool = False) -> Form:
    """The form Tradier's ``POST /accounts/{id}/orders`` takes for one order: a spread
    (``legs``) as ``class=multileg``, an OCC symbol as ``class=option``, else equity.

    Raises ``BrokerError`` (not retryable) for what Tradier cannot take: an expiry or
    exercise booking (``settle_price``), a tag it would refuse, a missing price."""
    req = order.request
    if req.settle_price is not None:
        raise BrokerError(
            f"order {order.id} is a settlement booking (settle_price): never sent to Tradier"
        )
    if not TAG_RE.match(order.id):
        raise BrokerError(
            f"order id {order.id!r} cannot be a Tradier tag (letters, digits, dashes, max 255)"
        )
    if req.legs:
        form = multileg_form(order)
    elif is_occ(req.symbol):
        form = option_form(order)
    else:
        form = equity_form(order)
    if preview:
        form["preview"] = "true"
    return form


def _contracts(order: Order, quantity: float, what: str) -> int:
    if not float(quantity).is_integer():
        raise BrokerError(f"order {order.id}: {what} must be whole contracts, not {quantity}")
    return int(quantity)


def _occ(order: Order, symbol: str) -> str:
    try:
        parse_occ(symbol)
    except ValueError as exc:
        raise BrokerError(f"order {order.id}: {exc}") from None
    return symbol.strip().upper().replace(" ", "")


def equity_form(order: Order) -> Form:
    """``class=equity``: ``side`` is our intent's name (buy, sell, sell_short, buy_to_cover)."""
    req = order.request
    head: Form = {
        "class": "equity",
        "symbol": req.symbol,
        "side": req.intent.value,
        "quantity": req.quantity,
    }
    return _single(order, head)


def option_form(order: Order) -> Form:
    """``class=option``: ``symbol`` the underlying, ``option_symbol`` the OCC contract,
    ``side`` buy_to_open / sell_to_open / sell_to_close / buy_to_close."""
    req = order.request
    occ = _occ(order, req.symbol)
    head: Form = {
        "class": "option",
        "symbol": underlying_of(occ),
        "option_symbol": occ,
        "side": OPTION_SIDES[req.intent],
        "quantity": _contracts(order, req.quantity, "quantity"),
    }
    return _single(order, head)


def _single(order: Order, head: Form) -> Form:
    """A one-instrument form: ``head`` then type, duration, the prices the type takes, tag."""
    req = order.request
    kind = req.order_type
    if kind in (OrderType.LIMIT, OrderType.STOP_LIMIT) and req.limit_price is None:
        raise BrokerError(f"{kind.value} order {order.id} has no limit price")
    if kind in (OrderType.STOP, OrderType.STOP_LIMIT) and req.stop_price is None:
        raise BrokerError(f"{kind.value} order {order.id} has no stop price")
    return head | {
        "type": kind.value,
        "duration": req.time_in_force.value,
        "price": req.limit_price if kind in (OrderType.LIMIT, OrderType.STOP_LIMIT) else None,
        "stop": req.stop_price if kind in (OrderType.STOP, OrderType.STOP_LIMIT) else None,
        "tag": order.id,
    }


def multileg_type(req: OrderRequest, order_id: str) -> str:
    """Tradier's multileg ``type``: market, or the net as debit, credit or even."""
    if req.net == "even":
        return "even"
    if req.order_type is OrderType.MARKET:
        return "market"
    if req.order_type is not OrderType.LIMIT:
        raise BrokerError(
            f"order {order_id}: a multileg order is market or limit (net debit/credit/even),"
            f" not {req.order_type.value}"
        )
    if req.limit_price is None:
        raise BrokerError(f"multileg limit order {order_id} has no net price")
    if req.net is not None:
        return req.net
    return "debit" if req.intent.side.sign > 0 else "credit"


def multileg_form(order: Order) -> Form:
    """``class=multileg``: 2-4 legs, ``quantity[i]`` = the leg's ratio x units of the spread,
    ``price`` the positive net per unit for a debit or credit."""
    req = order.request
    if not MIN_LEGS <= len(req.legs) <= MAX_LEGS:
        raise BrokerError(
            f"order {order.id} has {len(req.legs)} legs; Tradier takes {MIN_LEGS}-{MAX_LEGS}"
        )
    units = _contracts(order, req.quantity, "the spread's quantity")
    kind = multileg_type(req, order.id)
    form: Form = {
        "class": "multileg",
        "symbol": req.symbol,
        "type": kind,
        "duration": req.time_in_force.value,
        "price": req.limit_price if kind in ("debit", "credit") else None,
    }
    seen: set[str] = set()
    for i, leg in enumerate(req.legs):
        occ = _occ(order, leg.symbol)
        if occ in seen:
            raise BrokerError(f"order {order.id} has {occ} in two legs")
        seen.add(occ)
        form[f"option_symbol[{i}]"] = occ
        form[f"side[{i}]"] = OPTION_SIDES[leg.intent]
        form[f"quantity[{i}]"] = leg.ratio * units
    form["tag"] = order.id
    return form


def _epoch(value: Any) -> float | None:
    """Epoch seconds of Tradier's ISO ``transaction_date``/``create_date`` (``...Z``)."""
    if not value or not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _intent(raw: Any) -> Intent | None:
    """Our intent from an equity side (``buy``...) or an option side (``buy_to_open``...)."""
    side = str(raw or "").strip().lower()
    try:
        return Intent(side)
    except ValueError:
        return INTENTS.get(side)


def _text(value: Any) -> str | None:
    return str(value).strip() if value not in (None, "", "null") else None


def leg_report(raw: dict[str, Any]) -> LegReport | None:
    """One entry of a multileg order's ``leg`` array (None without an option symbol)."""
    symbol = _text(raw.get("option_symbol"))
    if symbol is None:
        return None
    quantity = tn.integer(raw.get("quantity"))
    return LegReport(
        symbol=symbol.upper().replace(" ", ""),
        intent=_intent(raw.get("side")),
        quantity=quantity or None,
        filled=tn.integer(raw.get("exec_quantity")),
        avg_price=tn.num(raw.get("avg_fill_price")) or None,
        last_price=tn.num(raw.get("last_fill_price")) or None,
        last_quantity=tn.integer(raw.get("last_fill_quantity")),
        status=map_status(raw.get("status")),
        time=_epoch(raw.get("transaction_date")),
    )


def order_report(raw: dict[str, Any]) -> OrderReport:
    """One Tradier order as the poller's typed report: numbers that may be strings or
    ``"null"``, zero meaning "none", ISO dates, a reason only sometimes given.

    An option order's symbol is its ``option_symbol`` (the OCC); a multileg order keeps
    the underlying and carries its ``leg`` array (one leg: an object) as ``legs``."""
    status = raw.get("status")
    quantity = tn.num(raw.get("quantity"))
    legs: tuple[LegReport, ...] = ()
    if str(raw.get("class") or "") == "multileg" or raw.get("leg") not in (None, "", "null"):
        found = (leg_report(leg) for leg in tn.collection(raw, "leg") if isinstance(leg, dict))
        legs = tuple(leg for leg in found if leg is not None)
    symbol = None if legs else _text(raw.get("option_symbol"))
    symbol = symbol or _text(raw.get("symbol"))
    return OrderReport(
        broker_order_id=str(raw.get("id")),
        status=map_status(status),
        filled=tn.integer(raw.get("exec_quantity")),
        avg_price=tn.num(raw.get("avg_fill_price")) or None,
        symbol=symbol.upper().replace(" ", "") if symbol and is_occ(symbol) else symbol,
        intent=_intent(raw.get("side")),
        quantity=tn.integer(quantity) if quantity else None,
        tag=str(raw.get("tag") or "") or None,
        last_price=tn.num(raw.get("last_fill_price")) or None,
        last_quantity=tn.integer(raw.get("last_fill_quantity")),
        time=_epoch(raw.get("transaction_date")),
        reason=str(raw.get("reason_description") or f"Tradier: {status}"),
        broker_status=str(status),
        legs=legs,
    )


def place_error(exc: TradierError, order_id: str) -> BrokerError:
    """Classify a failed order POST: refused (4xx) or unknown (everything else)."""
    status = exc.status
    if status == 429:  # still throttled after the client's retries: nothing was accepted
        return BrokerError(
            f"Tradier rate limit: order {order_id} not placed ({exc})", retryable=True
        )
    if status is not None and 400 <= status < 500 and status != 408:
        return BrokerError(f"Tradier rejected order {order_id}: {exc}", retryable=False)
    return BrokerTimeoutError(
        f"order {order_id} may or may not be placed ({exc}); reconcile by tag"
    )


def call_error(exc: TradierError, what: str) -> BrokerError:
    retryable = (
        isinstance(exc, TradierRetryableError)
        or exc.status in (None, 429)
        or (exc.status is not None and exc.status >= 500)
    )
    return BrokerError(f"Tradier {what} failed: {exc}", retryable=retryable)
