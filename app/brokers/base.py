"""The broker protocol: what the execution engine needs from any broker."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from app.models.market import Quote
from app.models.orders import Fill, Order, OrderStatus, Qty
from app.models.portfolio import AccountState, Position


class BrokerError(Exception):
    """The broker refused or failed a call; ``retryable`` says whether trying later may work."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class BrokerTimeoutError(BrokerError):
    """No answer in time: the order's fate is unknown until reconciled by tag."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


@dataclass(slots=True)
class BrokerEvent:
    """A status change or an execution reported by the broker for one of our orders."""

    order_id: str  # our client order id (the broker's tag)
    status: OrderStatus
    broker_order_id: str | None = None
    fill: Fill | None = None
    reason: str | None = None


@dataclass(slots=True)
class BrokerOrderState:
    order_id: str
    broker_order_id: str | None
    status: OrderStatus
    filled_quantity: Qty
    avg_fill_price: float | None


EventHandler = Callable[[BrokerEvent], Awaitable[None]]


@runtime_checkable
class Broker(Protocol):
    """What every broker offers, with its capabilities stated, not probed for:

    - ``keeps_book``: it holds the account's positions and cash (``positions``,
      ``balances``), the truth the engine adopts at start-up (Tradier); the paper broker
      does not (our ledger is its book).
    - ``redelivers_fills``: it reports a fill again until the engine has booked it, so
      the engine does not also replay fills for it while running (Tradier's poller).
    """

    name: str
    account: str
    keeps_book: bool
    redelivers_fills: bool

    async def start(self, on_event: EventHandler) -> None: ...

    async def close(self) -> None: ...

    async def submit(self, order: Order) -> str:
        """Send the order; returns the broker's order id. Raises BrokerError/BrokerTimeoutError."""

    async def cancel(self, order: Order) -> None: ...

    async def find_by_tag(self, order_id: str) -> BrokerOrderState | None:
        """The broker's view of one of our orders (reconciliation), or None if never received."""

    async def fills_for(
        self,
        order_id: str,
        filled_quantity: Qty | None = None,
        avg_fill_price: float | None = None,
        leg_fills: Mapping[str, Sequence[float]] | None = None,
    ) -> list[Fill]:
        """Fills for one of our orders not yet booked (given what is booked; a spread's
        booked legs as its ``leg_fills``: OCC symbol -> [contracts, average price])."""

    async def on_quote(self, quote: Quote) -> None:
        """A market quote (the paper broker fills resting orders on it)."""

    async def positions(self) -> list[Position]:
        """The broker's positions (``keeps_book`` brokers)."""

    async def balances(self) -> AccountState:
        """The broker's cash and equity (``keeps_book`` brokers)."""
