"""The paper broker's option fills: a spread fills as one order at its net price.

Market: every leg at its natural side (ask for buys, bid for sells) less slippage.
Limit: when the legs' net mid reaches the limit (a debit at or below it, a credit at
or above it), every leg at its mid. Commissions are per contract, on each leg's fill.
An expiry or exercise booking (``settle_price``) fills at that price, at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from app.models.market import Quote
from app.models.orders import Fill, Intent, OrderType, Side

QuoteSource = Callable[[str], Awaitable[Quote | None]]


def net_per_unit(legs: list[dict[str, Any]], prices: dict[str, float]) -> float:
    """A spread's signed net per unit at these leg prices (+ paid, - received)."""
    return float(
        sum(Intent(leg["intent"]).side.sign * leg["ratio"] * prices[leg["symbol"]] for leg in legs)
    )


async def spread_prices(
    request: dict[str, Any], quotes: QuoteSource, slippage: float
) -> dict[str, float] | None:
    """Each leg's fill price if the spread fills now, else None (no quote, limit not reached)."""
    legs = request["legs"]
    found: dict[str, Quote] = {}
    for leg in legs:
        quote = await quotes(leg["symbol"])
        if quote is None or quote.bid is None or quote.ask is None:
            return None
        found[leg["symbol"]] = quote
    if OrderType(request["order_type"]) is OrderType.MARKET:
        prices = {}
        for leg in legs:
            q = found[leg["symbol"]]
            buy = Intent(leg["intent"]).side is Side.BUY
            px = q.ask * (1 + slippage) if buy else q.bid * (1 - slippage)
            prices[leg["symbol"]] = round(max(px, 0.0), 4)
        return prices
    mids = {s: (q.bid + q.ask) / 2 for s, q in found.items()}
    net = net_per_unit(legs, mids)
    limit = float(request["limit_price"] or 0.0)
    effect = request.get("net") or ("credit" if request["intent"] == "sell" else "debit")
    reached = net <= limit + 1e-9 if effect == "debit" else -net >= limit - 1e-9
    if effect == "even":
        reached = net <= 1e-9
    return {s: round(m, 4) for s, m in mids.items()} if reached else None


def spread_fills(
    record: dict[str, Any],
    prices: dict[str, float],
    *,
    broker: str,
    account: str,
    per_contract: float,
    now: float,
) -> list[Fill]:
    """One fill per leg for the whole (remaining) spread."""
    order = record["order"]
    request = order["request"]
    units = request["quantity"] - record["filled"]
    fills = []
    for i, leg in enumerate(request["legs"]):
        contracts = units * leg["ratio"]
        fills.append(
            Fill(
                id=f"{record['broker_order_id']}-{len(record['fills']) + i + 1}",
                order_id=order["id"],
                broker=broker,
                account=account,
                symbol=leg["symbol"],
                intent=leg["intent"],
                quantity=contracts,
                price=prices[leg["symbol"]],
                commission=round(per_contract * contracts, 4),
                time=now,
                strategy=request["strategy"],
            )
        )
    return fills
