"""Inbound signals: a TradingView (or kairos) alert, and the decision we answer with."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.models.market import is_valid_symbol, normalize_symbol
from app.models.orders import OrderType

MAX_ALERT_QUANTITY = 1_000_000


class AlertAction(StrEnum):
    BUY = "buy"
    SELL = "sell"
    EXIT = "exit"  # close the strategy's position in the ticker
    FLATTEN = "flatten"  # close every position in the ticker


class Alert(BaseModel):
    """The JSON alert message, with TradingView's placeholders already filled in."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    passphrase: str | None = Field(None, repr=False, exclude=True)
    ticker: str = Field(min_length=1, max_length=40)
    action: AlertAction
    quantity: float | None = Field(None, gt=0, le=MAX_ALERT_QUANTITY)
    order_type: OrderType = OrderType.MARKET
    price: float | None = Field(None, gt=0, lt=10_000_000)
    stop_loss: float | None = Field(None, gt=0, lt=10_000_000)
    take_profit: float | None = Field(None, gt=0, lt=10_000_000)
    strategy: str = Field("default", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")
    alert_id: str | None = Field(None, min_length=1, max_length=128)
    time: datetime | None = None

    @field_validator("ticker")
    @classmethod
    def _ticker(cls, value: str) -> str:
        symbol = normalize_symbol(value)
        if not is_valid_symbol(symbol):
            raise ValueError(f"invalid ticker {value[:40]!r}")
        return symbol

    @field_validator("action", mode="before")
    @classmethod
    def _action(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("order_type", mode="before")
    @classmethod
    def _order_type(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("quantity", "price", "stop_loss", "take_profit", mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        """A number, or a numeric string (TradingView fills ``{{close}}`` and
        ``{{strategy.order.contracts}}`` into quoted strings); never a boolean, which
        pydantic's lax mode would take as 1 share."""
        if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
            return value
        if isinstance(value, str):
            return value  # parsed (and its bounds checked) as a float below
        raise ValueError("must be a number or a numeric string")

    @field_validator("quantity")
    @classmethod
    def _whole_shares(cls, value: float | None) -> float | None:
        if value is not None and value != int(value):
            raise ValueError("quantity must be a whole number of shares")
        return value


class Decision(BaseModel):
    """What the webhook answers, stored under the alert's idempotency key."""

    alert_id: str
    status: str  # accepted | denied | ignored (| queued: taken in, not decided yet)
    account: str | None = None  # the trading account this decision is for
    order_id: str | None = None
    symbol: str | None = None
    action: str | None = None
    quantity: int | None = None
    check: str | None = None
    reason: str | None = None
    message: str | None = None
    strategy: str | None = None
    time: float
    duplicate: bool = False


class AccountDecision(BaseModel):
    """One routed account's part of the answer to an alert."""

    account: str
    status: str  # accepted | denied | ignored | queued
    order_id: str | None = None
    quantity: int | None = None  # this account's (a route's multiplier or sizing applied)
    check: str | None = None
    reason: str | None = None


class WebhookAnswer(Decision):
    """The webhook's answer: the first routed account's decision at the top level (as
    with one account), and every routed account's in ``decisions``."""

    decisions: list[AccountDecision] = []
