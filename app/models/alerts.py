"""Inbound signals: a TradingView (or kairos) alert, and the decision we answer with."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.models.market import is_valid_symbol, normalize_symbol
from app.models.occ import is_occ
from app.models.orders import OrderType
from app.options.spec import OptionSpec

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
    option: OptionSpec | None = None  # contracts chosen from the chain (app/options/spec.py)
    price_mode: Literal["mid", "natural"] | None = Field(
        None, description='"price": "mid" or "natural": the limit computed from the chain'
    )
    max_loss: float | None = Field(None, gt=0, lt=100_000_000, description="size: dollars at risk")
    premium_budget: float | None = Field(
        None, gt=0, lt=100_000_000, description="size: dollars of premium (debits)"
    )

    @model_validator(mode="before")
    @classmethod
    def _price_words(cls, data: Any) -> Any:
        """``"price": "mid"``/``"natural"`` ask for a limit computed at decision time."""
        if isinstance(data, dict):
            price = data.get("price")
            if isinstance(price, str) and price.strip().lower() in ("mid", "natural"):
                data = {**data, "price": None, "price_mode": price.strip().lower()}
                if "order_type" not in data:
                    data["order_type"] = "limit"
        return data

    @model_validator(mode="after")
    def _option_fields(self) -> Alert:
        contract = is_occ(self.ticker)
        if self.option is not None and contract:
            raise ValueError("an OCC symbol as ticker is the contract: drop the option object")
        if (self.max_loss or self.premium_budget or self.price_mode) and not (
            self.option is not None or contract
        ):
            raise ValueError("max_loss, premium_budget and price mid/natural are for options")
        if self.max_loss is not None and self.premium_budget is not None:
            raise ValueError("size by max_loss or premium_budget, not both")
        return self

    @property
    def is_option(self) -> bool:
        return self.option is not None or is_occ(self.ticker)

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


class OptionLegChoice(BaseModel):
    """One contract the chain gave for an alert, as chosen at decision time."""

    symbol: str
    side: str  # buy_to_open | sell_to_open | buy_to_close | sell_to_close
    ratio: int = 1
    strike: float
    expiration: str
    bid: float | None = None
    ask: float | None = None
    delta: float | None = None


class OptionChoice(BaseModel):
    """What an option alert was decided on: the contracts, the net and how old the greeks were."""

    legs: list[OptionLegChoice]
    net: str | None = None  # debit | credit | even
    net_price: float | None = None  # per unit, per share (x100 per contract)
    max_loss: float | None = None  # per unit in dollars (None: unbounded)
    greeks_age_seconds: float | None = None


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
    option: OptionChoice | None = None


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
