"""What the order poller knows of one order: the broker's typed report (``OrderReport``)
and our watermark of what was already reported as fills (``Tracked``).

Kept apart from the loop (``polling.py``, which re-exports both) so each module stays
small; a spread's per-leg parts are in ``legs.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from app.brokers.base import BrokerOrderState
from app.brokers.legs import LegReport, LegState, step_price
from app.models.orders import Intent, Order, OrderStatus, Qty


@dataclass(frozen=True, slots=True)
class OrderReport:
    """The broker's current, cumulative view of one order, typed (its quirks mapped away).

    ``filled``/``avg_price`` are execution so far; ``last_price``/``last_quantity`` the
    latest execution when the broker says. ``None`` is "not reported".
    """

    broker_order_id: str
    status: OrderStatus  # UNKNOWN for a status the broker's mapper does not know
    filled: Qty = 0
    avg_price: float | None = None
    symbol: str | None = None
    intent: Intent | None = None
    quantity: Qty | None = None
    tag: str | None = None  # our client order id, as the broker echoes it
    last_price: float | None = None
    last_quantity: Qty = 0
    time: float | None = None  # epoch seconds of the latest execution
    reason: str | None = None  # why the status is what it is, in the broker's words
    broker_status: str = ""  # the broker's own status word (logs)
    legs: tuple[LegReport, ...] = ()  # a multileg order's legs (then ``symbol``: underlying)

    def state(self, order_id: str) -> BrokerOrderState:
        """As the reconciler's ``BrokerOrderState`` of our order ``order_id``."""
        return BrokerOrderState(
            order_id=order_id,
            broker_order_id=self.broker_order_id,
            status=self.status,
            filled_quantity=self.filled,
            avg_fill_price=self.avg_price,
        )


@dataclass(slots=True)
class Tracked:
    """What we know of one of our orders at the broker, and how much of it we reported."""

    order_id: str  # our id = the broker's tag
    broker_order_id: str
    symbol: str | None = None
    intent: Intent | None = None
    quantity: Qty | None = None
    strategy: str = "default"
    filled: Qty = 0  # cumulative quantity already turned into Fill events
    avg: float | None = None  # the broker's average fill price at that point
    status: OrderStatus | None = None  # last status reported
    legs: list[LegState] = field(default_factory=list)  # a multileg order's legs

    @classmethod
    def of(cls, order: Order, broker_order_id: str, status: OrderStatus | None = None) -> Tracked:
        """One of our orders as submitted (what it already booked is the watermark)."""
        req = order.request
        return cls(
            order_id=order.id,
            broker_order_id=broker_order_id,
            symbol=req.symbol,
            intent=req.intent,
            quantity=req.quantity,
            strategy=req.strategy,
            filled=order.filled_quantity,
            avg=order.avg_fill_price,
            status=status,
            legs=[LegState.of(leg, req.quantity, order.leg_fills) for leg in req.legs],
        )

    @property
    def done(self) -> bool:
        """Wholly executed (a spread: every leg)."""
        if self.legs:
            return all(leg.done for leg in self.legs)
        return self.quantity is not None and self.filled >= self.quantity

    @property
    def executed(self) -> bool:
        return self.filled > 0 or any(leg.filled > 0 for leg in self.legs)


def fill_price(tracked: Tracked, report: OrderReport, delta: Qty) -> float | None:
    """The price of the ``delta`` executed since ``tracked``'s watermark (``step_price``)."""
    return step_price(
        tracked.filled,
        tracked.avg,
        report.avg_price,
        report.last_price,
        report.last_quantity,
        delta,
    )
