"""The broker protocol: what the execution engine needs from any broker."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from app.models.orders import Fill, Order, OrderStatus


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
    filled_quantity: int
    avg_fill_price: float | None


EventHandler = Callable[[BrokerEvent], Awaitable[None]]


@runtime_checkable
class Broker(Protocol):
    name: str
    account: str

    async def start(self, on_event: EventHandler) -> None: ...

    async def close(self) -> None: ...

    async def submit(self, order: Order) -> str:
        """Send the order; returns the broker's order id. Raises BrokerError/BrokerTimeoutError."""

    async def cancel(self, order: Order) -> None: ...

    async def find_by_tag(self, order_id: str) -> BrokerOrderState | None:
        """The broker's view of one of our orders (reconciliation), or None if never received."""
