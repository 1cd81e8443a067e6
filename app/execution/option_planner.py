"""Option alerts -> order requests: one contract through the equity planner, a spread as
one multileg request, ``exit`` as one closing order of the strategy's contracts.

Pure like ``planner.py``: the chain data comes in as a :class:`Selection` (fetched
before the engine lock), the positions from the book.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import reduce

from app.execution.planner import order_id, pending_by_symbol, plan
from app.execution.sizing import SizingError, SizingRule, size
from app.models.alerts import Alert, AlertAction, OptionChoice, OptionLegChoice
from app.models.occ import is_occ, parse_occ
from app.models.orders import (
    OPTION_SIDES,
    Intent,
    Order,
    OrderLeg,
    OrderRequest,
    OrderType,
    Qty,
)
from app.options.chain import OptionQuote
from app.options.select import Selection
from app.options.spreads import Leg, net_mid, net_natural, to_tick, worst_loss
from app.portfolio.book import AccountBook

MULTIPLIER = 100
MAX_LEGS = 4


@dataclass(slots=True)
class OptionPlan:
    """The requests, what they were chosen on, and each one's reference price per share
    (what risk prices notional and premium with)."""

    requests: list[OrderRequest]
    choice: OptionChoice | None = None
    reference: dict[str, float] = field(default_factory=dict)


def option_holdings(book: AccountBook, strategy: str, underlying: str) -> dict[str, Qty]:
    """The strategy's contracts on ``underlying`` (OCC symbol -> signed contracts)."""
    found: dict[str, Qty] = {}
    for symbol, qty in book.strategy_parts(strategy).items():
        if qty and is_occ(symbol) and parse_occ(symbol).underlying == underlying:
            found[symbol] = qty
    return dict(sorted(found.items()))


def _legs(selection: Selection) -> list[Leg]:
    return [
        Leg(s.buy, s.plan.ratio, s.quote.right, s.quote.strike, s.quote.bid, s.quote.ask)
        for s in selection.legs
    ]


def _choice(
    legs: Sequence[tuple[OptionQuote | None, str, Intent, int]],
    net: float | None,
    loss: float | None,
    greeks_time: float | None,
    now: float,
) -> OptionChoice:
    return OptionChoice(
        legs=[
            OptionLegChoice(
                symbol=symbol,
                side=OPTION_SIDES[intent],
                ratio=ratio,
                strike=float(parse_occ(symbol).strike),
                expiration=parse_occ(symbol).expiry.isoformat(),
                bid=q.bid if q else None,
                ask=q.ask if q else None,
                delta=q.delta if q else None,
            )
            for q, symbol, intent, ratio in legs
        ],
        net=None if net is None else ("debit" if net > 0 else "credit" if net < 0 else "even"),
        net_price=None if net is None else round(abs(net), 4),
        max_loss=None if loss is None else round(loss * MULTIPLIER, 2),
        greeks_age_seconds=None if greeks_time is None else round(max(0.0, now - greeks_time), 1),
    )


def _net_price(alert: Alert, legs: Sequence[Leg]) -> tuple[OrderType, float | None, float]:
    """Order type, the signed limit per unit (None: market) and the signed net to size
    and risk-check with (the limit, else the natural price: the worst fill)."""
    natural = net_natural(legs)
    mid = net_mid(legs)
    if alert.price_mode is not None:
        basis = mid if alert.price_mode == "mid" else natural
        if basis is None:
            raise SizingError(f"no two-sided quotes to price at {alert.price_mode}")
        limit = float(to_tick(basis, paying=basis > 0)) * (1 if basis >= 0 else -1)
        return OrderType.LIMIT, limit, limit
    if alert.order_type is OrderType.LIMIT:
        if alert.price is None:
            raise SizingError("limit orders need a price (a number, mid or natural)")
        direction = mid if mid is not None else natural
        if direction is None:
            raise SizingError("no quotes to tell a debit from a credit; give price mid")
        signed = alert.price if direction >= 0 else -alert.price
        return OrderType.LIMIT, signed, signed
    if alert.order_type is not OrderType.MARKET:
        raise SizingError(f"option orders are market or limit, not {alert.order_type.value}")
    if natural is None:
        raise SizingError("no quotes for a market option order's reference price")
    return OrderType.MARKET, None, natural


def _units(alert: Alert, rule: SizingRule, legs: Sequence[Leg], net: float, equity: float) -> int:
    """Units (contracts, or spreads): the alert's quantity, or what max_loss or the
    premium budget allows at ``net`` (signed per share per unit)."""
    if alert.max_loss is not None:
        loss = worst_loss(legs, net)
        if loss is None:
            raise SizingError("max_loss sizing needs a defined-risk position (unbounded loss)")
        per_unit = loss * MULTIPLIER
        if per_unit <= 0:
            raise SizingError("this position cannot lose: size it by quantity")
        units = math.floor(alert.max_loss / per_unit + 1e-9)
        if units < 1:
            raise SizingError(
                f"one unit risks ${per_unit:,.2f}, more than max_loss ${alert.max_loss:,.2f}"
            )
        return units
    if alert.premium_budget is not None:
        if net <= 0:
            raise SizingError("premium_budget sizes debits; this is a credit (use max_loss)")
        units = math.floor(alert.premium_budget / (net * MULTIPLIER) + 1e-9)
        if units < 1:
            raise SizingError(
                f"one unit costs ${net * MULTIPLIER:,.2f}, more than premium_budget "
                f"${alert.premium_budget:,.2f}"
            )
        return units
    if rule.mode not in ("signal", "fixed"):
        raise SizingError(
            f"option alerts size by quantity, max_loss or premium_budget (not {rule.mode})"
        )
    return size(rule, alert, abs(net) * MULTIPLIER, equity)


def plan_option(
    alert: Alert,
    alert_id: str,
    account: str,
    book: AccountBook,
    working: Iterable[Order],
    selection: Selection,
    rule: SizingRule,
    now: float,
) -> OptionPlan:
    """An opening (buy/sell) option alert on the contracts of ``selection``."""
    working = list(working)
    legs = _legs(selection)
    kind, limit, net = _net_price(alert, legs)
    units = _units(alert, rule, legs, net, book.equity)
    loss = worst_loss(legs, net)
    if len(selection.legs) == 1:  # one contract: buy/sell against what the account holds
        quote = selection.legs[0].quote
        single = alert.model_copy(
            update={
                "ticker": quote.symbol,
                "quantity": units,
                "order_type": kind,
                "price": abs(limit) if limit is not None else None,
                "action": AlertAction.BUY if selection.legs[0].buy else AlertAction.SELL,
                "stop_loss": None,
                "take_profit": None,
            }
        )
        pending = pending_by_symbol(working).get(quote.symbol, 0)
        requests = plan(
            single,
            alert_id,
            account=account,
            position=book.position(quote.symbol),
            pending=pending,
            price=abs(net),
            equity=book.equity,
            rule=SizingRule(mode="signal"),
        )
        choice = _choice(
            [(quote, r.symbol, r.intent, 1) for r in requests],
            net,
            loss,
            selection.greeks_time,
            now,
        )
        return OptionPlan(requests, choice, {r.client_order_id: abs(net) for r in requests})
    held = {s.quote.symbol: book.position(s.quote.symbol) for s in selection.legs}
    order_legs = []
    for s in selection.legs:
        need = s.plan.ratio * units
        have = held[s.quote.symbol]
        if s.buy:
            intent = Intent.BUY_TO_COVER if have <= -need else Intent.BUY
        else:
            intent = Intent.SELL if have >= need else Intent.SELL_SHORT
        order_legs.append(OrderLeg(symbol=s.quote.symbol, intent=intent, ratio=s.plan.ratio))
    request = _spread_request(
        alert, alert_id, account, selection.underlying, order_legs, units, kind, limit
    )
    choice = _choice(
        [
            (s.quote, leg.symbol, leg.intent, leg.ratio)
            for s, leg in zip(selection.legs, order_legs, strict=True)
        ],
        net,
        loss,
        selection.greeks_time,
        now,
    )
    return OptionPlan([request], choice, {request.client_order_id: abs(net)})


def _spread_request(
    alert: Alert,
    alert_id: str,
    account: str,
    underlying: str,
    legs: list[OrderLeg],
    units: Qty,
    kind: OrderType,
    limit: float | None,
    leg_no: int = 0,
) -> OrderRequest:
    net = None
    if limit is not None:
        net = "debit" if limit > 0 else "credit" if limit < 0 else "even"
    return OrderRequest(
        client_order_id=order_id(account, alert_id, leg_no),
        symbol=underlying,
        intent=Intent.SELL if net == "credit" else Intent.BUY,
        quantity=units,
        order_type=kind,
        limit_price=abs(limit) if limit else None,
        strategy=alert.strategy,
        alert_id=alert_id,
        legs=tuple(legs),
        net=net,
    )


def plan_option_exit(
    alert: Alert,
    alert_id: str,
    account: str,
    book: AccountBook,
    working: Iterable[Order],
    quotes: dict[str, OptionQuote],
    now: float,
    greeks_time: float | None = None,
    first_leg: int = 0,
) -> OptionPlan:
    """Close the strategy's contracts on the alert's underlying: one multileg order per
    four contracts (one order when it holds 2-4), a single contract as a plain order.
    Never more than the account holds (net of working orders) on each contract."""
    pending = pending_by_symbol(list(working), alert.strategy)
    closing: dict[str, Qty] = {}
    for symbol, qty in option_holdings(book, alert.strategy, alert.ticker).items():
        part = qty + pending.get(symbol, 0)
        account_qty = book.position(symbol)
        if part * account_qty <= 0:
            continue
        closing[symbol] = part if abs(part) <= abs(account_qty) else account_qty
    plan_ = OptionPlan([])
    chosen: list[tuple[OptionQuote | None, str, Intent, int]] = []
    symbols = list(closing)
    for n, start in enumerate(range(0, len(symbols), MAX_LEGS), start=first_leg):
        group = symbols[start : start + MAX_LEGS]
        units = reduce(math.gcd, (int(abs(closing[s])) for s in group))
        legs = [
            OrderLeg(
                symbol=s,
                intent=Intent.SELL if closing[s] > 0 else Intent.BUY_TO_COVER,
                ratio=int(abs(closing[s])) // units,
            )
            for s in group
        ]
        priced = [
            Leg(
                leg.intent is Intent.BUY_TO_COVER,
                leg.ratio,
                parse_occ(leg.symbol).right,
                parse_occ(leg.symbol).strike,
                quotes[leg.symbol].bid if leg.symbol in quotes else None,
                quotes[leg.symbol].ask if leg.symbol in quotes else None,
            )
            for leg in legs
        ]
        kind, limit = OrderType.MARKET, None
        if alert.price_mode is not None or alert.order_type is OrderType.LIMIT:
            kind, limit, _ = _net_price(alert, priced)
        if len(legs) == 1:
            leg = legs[0]
            request = OrderRequest(
                client_order_id=order_id(account, alert_id, n),
                symbol=leg.symbol,
                intent=leg.intent,
                quantity=units,
                order_type=kind,
                limit_price=abs(limit) if limit else None,
                strategy=alert.strategy,
                alert_id=alert_id,
            )
        else:
            request = _spread_request(
                alert, alert_id, account, alert.ticker, legs, units, kind, limit, n
            )
        chosen.extend((quotes.get(g.symbol), g.symbol, g.intent, g.ratio) for g in legs)
        natural = net_natural(priced)
        plan_.reference[request.client_order_id] = abs(natural) if natural is not None else 0.0
        plan_.requests.append(request)
    if chosen:
        plan_.choice = _choice(chosen, None, None, greeks_time, now)
    return plan_
