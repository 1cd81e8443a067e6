"""Orders, fills and their lifecycle: the vocabulary shared by risk, execution and brokers."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def _whole_if_integral(value: int | float) -> int | float:
    """Shares and contracts stay integers (``10``, never ``10.0``, in JSON and in what a
    broker is sent); fractions stay where the instrument allows them (0.0375 BTC)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


Qty = int | float  # a quantity: whole shares and contracts as int, fractions as float
# a quantity as the instrument allows it: whole shares or contracts, or a fraction of a coin
Quantity = Annotated[int | float, Field(gt=0), AfterValidator(_whole_if_integral)]


class Side(StrEnum):
    """Direction of an order. Whether it opens or closes is ``Intent``."""

    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1


class Intent(StrEnum):
    """Position effect, spelled as Tradier's equity order sides."""

    BUY = "buy"  # open or add long
    SELL = "sell"  # reduce or close long
    SELL_SHORT = "sell_short"  # open or add short
    BUY_TO_COVER = "buy_to_cover"  # reduce or close short

    @property
    def side(self) -> Side:
        return Side.BUY if self in (Intent.BUY, Intent.BUY_TO_COVER) else Side.SELL

    @property
    def reduces(self) -> bool:
        return self in (Intent.SELL, Intent.BUY_TO_COVER)


# an option order's position effect, as the OCC and brokers spell it (Tradier's sides)
OPTION_SIDES: dict[Intent, str] = {
    Intent.BUY: "buy_to_open",
    Intent.SELL_SHORT: "sell_to_open",
    Intent.SELL: "sell_to_close",
    Intent.BUY_TO_COVER: "buy_to_close",
}


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"


class TimeInForce(StrEnum):
    DAY = "day"
    GTC = "gtc"


class OrderStatus(StrEnum):
    NEW = "new"
    SUBMITTED = "submitted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"
    UNKNOWN = "unknown"  # broker did not answer: reconcile by tag, never resubmit blindly

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED}
)

# Allowed lifecycle transitions; anything else is a bug or a stale broker event.
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.NEW: frozenset(
        {OrderStatus.SUBMITTED, OrderStatus.REJECTED, OrderStatus.UNKNOWN, OrderStatus.CANCELED}
    ),
    OrderStatus.SUBMITTED: frozenset(
        {
            OrderStatus.PARTIALLY_FILLED,
            OrderStatus.FILLED,
            OrderStatus.CANCELED,
            OrderStatus.REJECTED,
            OrderStatus.EXPIRED,
            OrderStatus.UNKNOWN,
        }
    ),
    OrderStatus.PARTIALLY_FILLED: frozenset(
        {
            OrderStatus.PARTIALLY_FILLED,
            OrderStatus.FILLED,
            OrderStatus.CANCELED,
            OrderStatus.EXPIRED,
            OrderStatus.UNKNOWN,
        }
    ),
    OrderStatus.UNKNOWN: frozenset(
        {
            OrderStatus.SUBMITTED,
            OrderStatus.PARTIALLY_FILLED,
            OrderStatus.FILLED,
            OrderStatus.CANCELED,
            OrderStatus.REJECTED,
            OrderStatus.EXPIRED,
        }
    ),
    OrderStatus.FILLED: frozenset(),
    OrderStatus.CANCELED: frozenset(),
    OrderStatus.REJECTED: frozenset(),
    OrderStatus.EXPIRED: frozenset(),
}


class OrderLeg(BaseModel):
    """One contract of a multileg (spread) order: ``ratio`` contracts per unit of the spread.

    ``intent`` is the leg's position effect: BUY = buy to open, SELL_SHORT = sell to
    open, SELL = sell to close, BUY_TO_COVER = buy to close (Tradier's option sides)."""

    model_config = ConfigDict(frozen=True)

    symbol: str  # OCC option symbol
    intent: Intent
    ratio: int = Field(1, ge=1, le=100)

    @property
    def side(self) -> Side:
        return self.intent.side


NetEffect = Literal["debit", "credit", "even"]


class OrderRequest(BaseModel):
    """A sized order that has not been risk-checked or sent yet.

    A spread is one request with ``legs``: ``symbol`` is then the underlying,
    ``quantity`` the units of the spread, ``limit_price`` the net price per unit (a
    positive number; ``net`` says whether it is paid or received) and ``intent`` BUY for a
    debit, SELL for a credit (what it does to the position is each leg's intent)."""

    model_config = ConfigDict(frozen=True)

    client_order_id: str = Field(description="our id; sent to the broker as its tag")
    symbol: str
    intent: Intent
    quantity: Quantity
    order_type: OrderType = OrderType.MARKET
    limit_price: float | None = Field(None, gt=0)
    stop_price: float | None = Field(None, gt=0)
    time_in_force: TimeInForce = TimeInForce.DAY
    strategy: str = "default"
    alert_id: str | None = None
    stop_loss: float | None = Field(None, gt=0)
    take_profit: float | None = Field(None, gt=0)
    parent_id: str | None = Field(None, description="bracket child: the entry order's id")
    legs: tuple[OrderLeg, ...] = ()
    net: NetEffect | None = None
    settle_price: float | None = Field(
        None, ge=0, description="expiry or exercise: booked at this price, never sent to market"
    )

    @property
    def side(self) -> Side:
        return self.intent.side

    @property
    def multileg(self) -> bool:
        return bool(self.legs)

    @property
    def reduces(self) -> bool:
        """Every part only closes (a spread: every leg)."""
        if self.legs:
            return all(leg.intent.reduces for leg in self.legs)
        return self.intent.reduces


class Order(BaseModel):
    """An order's current state, persisted on every transition."""

    id: str
    broker: str
    account: str
    request: OrderRequest
    status: OrderStatus = OrderStatus.NEW
    broker_order_id: str | None = None
    filled_quantity: int | float = 0
    avg_fill_price: float | None = None
    reason: str | None = None
    created_at: float
    updated_at: float
    # a spread's executions per leg: OCC symbol -> [contracts, average price]
    leg_fills: dict[str, list[float]] = Field(default_factory=dict)

    @property
    def remaining(self) -> int | float:
        return self.request.quantity - self.filled_quantity


class Fill(BaseModel):
    """One execution. ``id`` is unique per execution and makes every consumer idempotent."""

    id: str
    order_id: str
    broker: str
    account: str
    symbol: str
    intent: Intent
    quantity: Quantity
    price: float = Field(ge=0)  # 0: an option that expired worthless
    commission: float = 0.0
    time: float
    strategy: str = "default"

    @property
    def side(self) -> Side:
        return self.intent.side
