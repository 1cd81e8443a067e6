"""Spread (multileg) orders at a polling broker: each leg's cumulative execution to fills.

A multileg order is one order at the broker with a per-leg report (contracts ordered,
executed so far, average and last fill price). The shared poller (``polling.py``)
keeps one watermark per leg (``LegState``) and turns each poll's growth of a leg into
one ``Fill`` of that leg: its OCC symbol, its intent, the new contracts, priced per
share as the broker reports it, with id ``{broker order id}-{leg index}-{cumulative}``
so a redelivery of the same step is the same fill. An order adopted after a restart
learns its legs from the report (``learn``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from app.models.orders import Fill, Intent, OrderLeg, OrderStatus, Qty

if TYPE_CHECKING:
    from app.brokers.polling import OrderReport, Tracked

log = logging.getLogger(__name__)

LegFills = Mapping[str, Sequence[float]]  # OCC symbol -> [contracts booked, average price]


@dataclass(frozen=True, slots=True)
class LegReport:
    """The broker's cumulative view of one leg of a multileg order, typed."""

    symbol: str  # OCC option symbol
    intent: Intent | None
    quantity: Qty | None = None  # contracts ordered (ratio x units)
    filled: Qty = 0  # contracts executed so far
    avg_price: float | None = None
    last_price: float | None = None
    last_quantity: Qty = 0
    status: OrderStatus = OrderStatus.UNKNOWN
    time: float | None = None  # epoch seconds of the leg's latest execution


@dataclass(slots=True)
class LegState:
    """One leg of a tracked multileg order and how much of it was reported as fills."""

    symbol: str
    intent: Intent | None
    quantity: Qty | None  # contracts
    ratio: int = 1  # contracts per unit of the spread
    filled: Qty = 0  # cumulative contracts already turned into Fill events
    avg: float | None = None  # the leg's average fill price at that point

    @classmethod
    def of(cls, leg: OrderLeg, units: Qty, booked: LegFills | None = None) -> LegState:
        """A leg of our request (what the order already booked of it is the watermark)."""
        done = (booked or {}).get(leg.symbol)
        state = cls(leg.symbol, leg.intent, leg.ratio * units, leg.ratio)
        if done and len(done) >= 2 and done[0]:
            state.filled, state.avg = done[0], done[1] or None
        return state

    @property
    def done(self) -> bool:
        """Wholly executed (a leg whose size the broker never said does not hold it up)."""
        return self.quantity is None or self.filled >= self.quantity


def step_price(
    prev: Qty,
    prev_avg: float | None,
    avg: float | None,
    last_price: float | None,
    last_quantity: Qty,
    delta: Qty,
) -> float | None:
    """The price of ``delta`` executed after ``prev`` (at ``prev_avg``), the average now
    being ``avg``: the first execution is at the average; a single new execution at its
    own price; several at the price that moves the old average to the new one."""
    if prev == 0 and avg:
        return avg
    if last_price and last_quantity == delta:
        return last_price
    if avg and prev_avg:
        derived = (avg * (prev + delta) - prev_avg * prev) / delta
        return derived if derived > 0 else avg
    return last_price or avg


def copy_legs(legs: Sequence[LegState]) -> list[LegState]:
    """Watermarks to go back to if reporting fails."""
    return [replace(leg) for leg in legs]


def learn(tracked: Tracked, report: OrderReport) -> None:
    """An adopted multileg order's legs, from the report (ratio = contracts / units)."""
    if tracked.legs or not report.legs:
        return
    units = tracked.quantity or report.quantity
    for leg in report.legs:
        ratio = 1
        if units and leg.quantity and leg.quantity % units == 0:
            ratio = int(leg.quantity // units)
        tracked.legs.append(LegState(leg.symbol, leg.intent, leg.quantity, ratio))


def rebase(
    tracked: Tracked, report: OrderReport, units: Qty | None, booked: LegFills | None
) -> None:
    """Set the legs' watermarks to what the caller booked: per leg when it says
    (``booked``), else ``units`` of the spread x each leg's ratio."""
    learn(tracked, report)
    for leg in tracked.legs:
        done = booked.get(leg.symbol) if booked is not None else None
        if done and len(done) >= 2:
            leg.filled, leg.avg = done[0], done[1] or None
        elif booked is not None:
            leg.filled, leg.avg = 0, None
        elif units is not None:
            leg.filled, leg.avg = leg.ratio * units, None


def _matching(state: LegState, reports: Sequence[LegReport]) -> LegReport | None:
    return next((r for r in reports if r.symbol == state.symbol), None)


def new_leg_fills(
    tracked: Tracked, report: OrderReport, broker: str, account: str, now: float
) -> list[Fill]:
    """Each leg's execution since its watermark as one Fill (advancing it), in leg order.

    A leg whose growth has no price (or whose side is unknown) is deferred to a later
    poll. A FILLED leg (or order) with no executed quantity but a price is the whole leg.
    """
    learn(tracked, report)
    if tracked.symbol is None:
        tracked.symbol = report.symbol
    if tracked.intent is None:
        tracked.intent = report.intent
    if tracked.quantity is None:
        tracked.quantity = report.quantity
    fills = []
    for index, state in enumerate(tracked.legs):
        leg = _matching(state, report.legs)
        if leg is None:
            continue
        if state.intent is None:
            state.intent = leg.intent
        cum = leg.filled
        filled = OrderStatus.FILLED in (leg.status, report.status)
        if cum == 0 and filled and leg.avg_price:
            cum = state.quantity or 0
        delta = cum - state.filled
        if delta <= 0:
            continue
        price = step_price(
            state.filled, state.avg, leg.avg_price, leg.last_price, leg.last_quantity, delta
        )
        if not price or state.intent is None:
            log.warning(
                "%s order %s leg %s executed %s without a price or side; fill deferred",
                broker,
                tracked.broker_order_id,
                state.symbol,
                delta,
            )
            continue
        state.filled, state.avg = cum, leg.avg_price
        fills.append(
            Fill(
                id=f"{tracked.broker_order_id}-{index}-{cum}",
                order_id=tracked.order_id,
                broker=broker,
                account=account,
                symbol=state.symbol,
                intent=state.intent,
                quantity=delta,
                price=round(price, 6),
                time=leg.time or report.time or now,
                strategy=tracked.strategy,
            )
        )
    return fills
