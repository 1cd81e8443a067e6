"""Alert + position + sizing rule -> order requests. Pure: no Redis, no broker, no clock.

An alert is a signed change to the position: buy/sell by the sized quantity, ``exit``
closing the alert's strategy's part (net of its working orders; never more than the
account holds on that side), ``flatten`` the whole account's. The change is split against what the account holds (net of working orders),
as the broker sees it: a sell against a long closes first and shorts the rest (two legs).
Order ids are a hash of the account, the alert and the leg, so a replay of the same
alert can never name a new order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from app.execution.sizing import SizingError, SizingRule, size
from app.models.alerts import Alert, AlertAction
from app.models.orders import Intent, Order, OrderRequest, OrderType, Qty
from app.portfolio.book import AccountBook


def order_id(account: str, alert_id: str, leg: int) -> str:
    basis = f"{alert_id}|{leg}" if account == "default" else f"{account}|{alert_id}|{leg}"
    return "o" + hashlib.sha256(basis.encode()).hexdigest()[:20]


def plan(
    alert: Alert,
    alert_id: str,
    *,
    account: str,
    position: Qty,
    pending: Qty,
    price: float | None,
    equity: float,
    rule: SizingRule,
    strategy_held: Qty | None = None,
) -> list[OrderRequest]:
    """The orders an alert becomes. ``position`` is the account's signed holding,
    ``pending`` the signed remaining quantity of its working orders in the symbol,
    ``strategy_held`` the alert's strategy's part of both (default: all of it).
    Raises SizingError."""
    common: dict[str, Any] = {
        "symbol": alert.ticker,
        "strategy": alert.strategy,
        "alert_id": alert_id,
        "order_type": alert.order_type,
    }
    if alert.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
        if alert.price is None:
            raise SizingError(f"{alert.order_type.value} orders need a price")
        common["limit_price"] = alert.price
    if alert.order_type in (OrderType.STOP, OrderType.STOP_LIMIT):
        if alert.price is None:
            raise SizingError("stop orders need a price")
        common["stop_price"] = alert.price
    held = position + pending
    opening: dict[str, Any] = {}
    if alert.action is AlertAction.FLATTEN:
        change = -held
    elif alert.action is AlertAction.EXIT:
        # the strategy's part, but never past what the account holds on that side: an
        # exit only reduces (a part the account no longer holds is drift, not an order)
        part = held if strategy_held is None else strategy_held
        change = -part if abs(part) <= abs(held) else -held
        if part * held <= 0:
            change = 0
    else:
        qty = size(rule, alert, price or 0.0, equity)
        if qty <= 0:
            raise SizingError(f"sized to {qty} shares at {price}: nothing to trade")
        change = qty if alert.action is AlertAction.BUY else -qty
        opening = {"stop_loss": alert.stop_loss, "take_profit": alert.take_profit}
    if change == 0:
        return []
    buying = change > 0
    closing = min(abs(change), abs(held)) if (held < 0) == buying and held else 0
    requests = []
    if closing:
        requests.append(
            OrderRequest(
                client_order_id=order_id(account, alert_id, 0),
                intent=Intent.BUY_TO_COVER if buying else Intent.SELL,
                quantity=closing,
                **common,
            )
        )
    if abs(change) - closing:
        requests.append(
            OrderRequest(
                client_order_id=order_id(account, alert_id, len(requests)),
                intent=Intent.BUY if buying else Intent.SELL_SHORT,
                quantity=abs(change) - closing,
                **opening,
                **common,
            )
        )
    return requests


def pending_by_symbol(working: Iterable[Order], strategy: str | None = None) -> dict[str, Qty]:
    """The signed remaining quantity of working orders per symbol (a spread's per leg
    contract), of one strategy's orders when ``strategy`` is given."""
    pending: dict[str, Qty] = {}
    for o in working:
        req = o.request
        if strategy is not None and req.strategy != strategy:
            continue
        if req.legs:
            for leg in req.legs:
                signed = o.remaining * leg.ratio * leg.side.sign
                pending[leg.symbol] = pending.get(leg.symbol, 0) + signed
        else:
            pending[req.symbol] = pending.get(req.symbol, 0) + o.remaining * req.side.sign
    return pending


def plan_in_book(
    alert: Alert,
    alert_id: str,
    account: str,
    book: AccountBook,
    working: Iterable[Order],
    price: float | None,
    rule: SizingRule,
) -> list[OrderRequest]:
    """``plan`` with the position and working orders read from the account's book and
    open orders (the strategy's part of both for ``exit``)."""
    pending: Qty = 0
    strategy_pending: Qty = 0
    for o in working:
        req = o.request
        if req.symbol == alert.ticker and not req.legs:
            signed = o.remaining * req.side.sign
            pending += signed
            if req.strategy == alert.strategy:
                strategy_pending += signed
    return plan(
        alert,
        alert_id,
        account=account,
        position=book.position(alert.ticker),
        pending=pending,
        price=price,
        equity=book.equity,
        rule=rule,
        strategy_held=book.strategy_position(alert.strategy, alert.ticker) + strategy_pending,
    )
