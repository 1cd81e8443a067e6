"""Tradier's wire format and ours: order statuses, the order form, one order as the
poller's typed ``OrderReport``, and what a failed call means (refused, unknown, retry).

Pure functions, so the quirks (numbers as strings, ``"null"``, a reason only
sometimes, ISO dates) are mapped and tested in one place.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from app.brokers.base import BrokerError, BrokerTimeoutError
from app.brokers.polling import OrderReport
from app.models.orders import Intent, Order, OrderStatus, OrderType
from app.tradier import normalize as tn
from app.tradier.client import TradierError, TradierRetryableError

TAG_RE = re.compile(r"^[A-Za-z0-9-]{1,255}$")

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


def order_form(order: Order, *, preview: bool = False) -> dict[str, str | int | float | None]:
    """The form Tradier's ``POST /accounts/{id}/orders`` takes for one equity order."""
    req = order.request
    if not TAG_RE.match(order.id):
        raise BrokerError(
            f"order id {order.id!r} cannot be a Tradier tag (letters, digits, dashes, max 255)"
        )
    kind = req.order_type
    if kind in (OrderType.LIMIT, OrderType.STOP_LIMIT) and req.limit_price is None:
        raise BrokerError(f"{kind.value} order {order.id} has no limit price")
    if kind in (OrderType.STOP, OrderType.STOP_LIMIT) and req.stop_price is None:
        raise BrokerError(f"{kind.value} order {order.id} has no stop price")
    form: dict[str, str | int | float | None] = {
        "class": "equity",
        "symbol": req.symbol,
        "side": req.intent.value,
        "quantity": req.quantity,
        "type": kind.value,
        "duration": req.time_in_force.value,
        "price": req.limit_price if kind in (OrderType.LIMIT, OrderType.STOP_LIMIT) else None,
        "stop": req.stop_price if kind in (OrderType.STOP, OrderType.STOP_LIMIT) else None,
        "tag": order.id,
    }
    if preview:
        form["preview"] = "true"
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
    try:
        return Intent(str(raw))
    except ValueError:
        return None


def order_report(raw: dict[str, Any]) -> OrderReport:
    """One Tradier order as the poller's typed report: numbers that may be strings or
    ``"null"``, zero meaning "none", ISO dates, a reason only sometimes given."""
    status = raw.get("status")
    quantity = tn.num(raw.get("quantity"))
    return OrderReport(
        broker_order_id=str(raw.get("id")),
        status=map_status(status),
        filled=tn.integer(raw.get("exec_quantity")),
        avg_price=tn.num(raw.get("avg_fill_price")) or None,
        symbol=str(raw["symbol"]) if raw.get("symbol") else None,
        intent=_intent(raw.get("side")),
        quantity=tn.integer(quantity) if quantity else None,
        tag=str(raw.get("tag") or "") or None,
        last_price=tn.num(raw.get("last_fill_price")) or None,
        last_quantity=tn.integer(raw.get("last_fill_quantity")),
        time=_epoch(raw.get("transaction_date")),
        reason=str(raw.get("reason_description") or f"Tradier: {status}"),
        broker_status=str(status),
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
