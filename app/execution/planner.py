"""Alert + position + sizing rule -> order requests. Pure: no Redis, no broker, no clock.

A buy against a short covers first and opens with the rest (two legs); exit/flatten
close what is held net of working orders; order ids are a hash of the account, the
alert and the leg, so a replay of the same alert can never name a new order.
"""

from __future__ import annotations

import hashlib
from typing import Any

from app.execution.sizing import SizingError, SizingRule, size
from app.models.alerts import Alert, AlertAction
from app.models.orders import Intent, OrderRequest, OrderType


def order_id(account: str, alert_id: str, leg: int) -> str:
    basis = f"{alert_id}|{leg}" if account == "default" else f"{account}|{alert_id}|{leg}"
    return "o" + hashlib.sha256(basis.encode()).hexdigest()[:20]


def plan(
    alert: Alert,
    alert_id: str,
    *,
    account: str,
    position: int,
    pending: int,
    price: float | None,
    equity: float,
    rule: SizingRule,
) -> list[OrderRequest]:
    """The orders an alert becomes. ``position`` is the signed holding, ``pending`` the
    signed remaining quantity of working orders in the symbol. Raises SizingError."""
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
    if alert.action in (AlertAction.EXIT, AlertAction.FLATTEN):
        if held == 0:
            return []
        intent = Intent.SELL if held > 0 else Intent.BUY_TO_COVER
        return [
            OrderRequest(
                client_order_id=order_id(account, alert_id, 0),
                intent=intent,
                quantity=abs(held),
                **common,
            )
        ]
    qty = size(rule, alert, price or 0.0, equity)
    if qty <= 0:
        raise SizingError(f"sized to {qty} shares at {price}: nothing to trade")
    buying = alert.action is AlertAction.BUY
    closing = min(qty, abs(held)) if (held < 0 and buying) or (held > 0 and not buying) else 0
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
    if qty - closing:
        requests.append(
            OrderRequest(
                client_order_id=order_id(account, alert_id, len(requests)),
                intent=Intent.BUY if buying else Intent.SELL_SHORT,
                quantity=qty - closing,
                stop_loss=alert.stop_loss,
                take_profit=alert.take_profit,
                **common,
            )
        )
    return requests
