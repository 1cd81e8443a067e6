"""What strategies read (quotes, positions, account) and what they emit (signals).

Datahub answers are parsed leniently (unknown fields ignored) so a datahub that grows a
field never breaks a running scheduler.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Action(StrEnum):
    BUY = "buy"
    SELL = "sell"
    EXIT = "exit"


class Signal(BaseModel):
    """One decision about one symbol, tied to the bar (or session) it was computed from.

    ``bar_time`` is part of the alert id: the same decision on the same bar is the same
    alert, however often a run is retried or repeated.
    """

    model_config = ConfigDict(frozen=True)

    symbol: str
    action: Action
    bar_time: int = Field(description="Unix seconds (UTC) of the bar the decision is based on")
    quantity: int | None = Field(None, gt=0)
    price: float | None = Field(None, gt=0, description="reference price (not sent)")
    stop_loss: float | None = Field(None, gt=0)
    take_profit: float | None = Field(None, gt=0)
    reason: str = Field("", description="why, for logs and run-once (not sent)")

    @property
    def bar_datetime(self) -> datetime:
        return datetime.fromtimestamp(self.bar_time, tz=UTC)


class QuoteSnapshot(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    symbol: str
    last: float
    bid: float | None = None
    ask: float | None = None


class Position(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    symbol: str
    quantity: float
    avg_price: float = 0.0
    last_price: float | None = None
    market_value: float | None = None

    @property
    def value(self) -> float:
        """Market value, or quantity x last price when the datahub left it out."""
        if self.market_value is not None:
            return self.market_value
        return self.quantity * (self.last_price if self.last_price is not None else self.avg_price)


class Account(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    equity: float
    cash: float = 0.0
    buying_power: float | None = None
