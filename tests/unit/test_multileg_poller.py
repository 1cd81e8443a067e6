"""The shared order poller with spread (multileg) orders, against a tiny fake broker:
one fill per leg per step, stable ids, FILLED only when every leg is, redelivery after
a failed handler, adoption after a restart, and the caller's per-leg baseline."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from app.brokers.base import BrokerEvent
from app.brokers.legs import LegReport
from app.brokers.polling import OrderPoller, OrderReport
from app.models.orders import Fill, Intent, Order, OrderLeg, OrderRequest, OrderStatus

LONG, SHORT = "XYZ261218C00100000", "XYZ261218C00110000"


@dataclass
class Leg:
    symbol: str
    intent: Intent
    quantity: int
    cum: int = 0
    avg: float = 0.0


@dataclass
class Raw:
    id: str
    tag: str
    state: str = "working"
    legs: list[Leg] = field(default_factory=list)


STATES = {
    "working": OrderStatus.SUBMITTED,
    "part": OrderStatus.PARTIALLY_FILLED,
    "done": OrderStatus.FILLED,
    "gone": OrderStatus.CANCELED,
}


def to_report(raw: Raw) -> OrderReport:
    return OrderReport(
        broker_order_id=raw.id,
        status=STATES[raw.state],
        symbol="XYZ",
        intent=Intent.BUY,
        quantity=2,
        tag=raw.tag,
        time=1_700_000_000.0,
        legs=tuple(
            LegReport(
                symbol=leg.symbol,
                intent=leg.intent,
                quantity=leg.quantity,
                filled=leg.cum,
                avg_price=leg.avg or None,
                status=OrderStatus.FILLED if leg.cum >= leg.quantity else OrderStatus.SUBMITTED,
            )
            for leg in raw.legs
        ),
    )


class Venue:
    def __init__(self) -> None:
        self.orders: dict[str, Raw] = {}

    async def listing(self) -> list[Raw]:
        return list(self.orders.values())

    def fill(self, bid: str, index: int, cum: int, avg: float, state: str = "part") -> None:
        order = self.orders[bid]
        order.legs[index].cum, order.legs[index].avg = cum, avg
        order.state = state


class Events:
    def __init__(self, fail: int = 0) -> None:
        self.items: list[BrokerEvent] = []
        self.fail = fail

    async def __call__(self, event: BrokerEvent) -> None:
        if self.fail:
            self.fail -= 1
            raise RuntimeError("store down")
        self.items.append(event)

    @property
    def fills(self) -> list[Fill]:
        return [e.fill for e in self.items if e.fill is not None]

    @property
    def statuses(self) -> list[OrderStatus]:
        return [e.status for e in self.items]


def make(venue: Venue, events: Events | None = None) -> OrderPoller[Raw]:
    poller = OrderPoller(broker="fake", account="A1", fetch=venue.listing, report=to_report)
    poller.on_event = events
    return poller


def vertical(
    oid: str = "o1", units: int = 2, leg_fills: dict[str, list[float]] | None = None
) -> Order:
    """A 1x2 call ratio spread: buy 1, sell 2 per unit."""
    now = time.time()
    request = OrderRequest(
        client_order_id=oid,
        symbol="XYZ",
        intent=Intent.BUY,
        quantity=units,
        strategy="s",
        legs=(
            OrderLeg(symbol=LONG, intent=Intent.BUY),
            OrderLeg(symbol=SHORT, intent=Intent.SELL_SHORT, ratio=2),
        ),
    )
    return Order(
        id=oid,
        broker="fake",
        account="A1",
        request=request,
        created_at=now,
        updated_at=now,
        leg_fills=leg_fills or {},
    )


def placed(venue: Venue, poller: OrderPoller[Raw], order: Order, bid: str = "7") -> None:
    venue.orders[bid] = Raw(
        bid,
        order.id,
        legs=[Leg(LONG, Intent.BUY, 2), Leg(SHORT, Intent.SELL_SHORT, 4)],
    )
    poller.track(order, bid)


async def test_each_legs_growth_is_one_fill_of_that_leg() -> None:
    venue, events = Venue(), Events()
    poller = make(venue, events)
    placed(venue, poller, vertical())
    venue.fill("7", 0, 1, 3.0)
    venue.fill("7", 1, 2, 1.2)
    await poller.poll()
    venue.fill("7", 0, 2, 3.1)
    await poller.poll()
    venue.fill("7", 1, 4, 1.3, state="done")
    await poller.poll()
    got = [(f.id, f.symbol, f.intent, f.quantity, f.price) for f in events.fills]
    assert got == [
        ("7-0-1", LONG, Intent.BUY, 1, 3.0),
        ("7-1-2", SHORT, Intent.SELL_SHORT, 2, 1.2),
        ("7-0-2", LONG, Intent.BUY, 1, 3.2),  # (2 x 3.1 - 1 x 3.0) / 1
        ("7-1-4", SHORT, Intent.SELL_SHORT, 2, 1.4),
    ]
    assert all((f.order_id, f.strategy, f.account) == ("o1", "s", "A1") for f in events.fills)
    # filled only when every leg is: the long leg completing alone is not enough
    assert events.statuses == [
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.FILLED,
    ]
    assert not poller.tracked


async def test_the_same_state_polled_again_says_nothing_new() -> None:
    venue, events = Venue(), Events()
    poller = make(venue, events)
    placed(venue, poller, vertical())
    venue.fill("7", 0, 2, 3.0)
    for _ in range(3):
        await poller.poll()
    assert [f.id for f in events.fills] == ["7-0-2"]


async def test_a_failed_handler_redelivers_the_same_leg_fills() -> None:
    venue, events = Venue(), Events(fail=1)
    poller = make(venue, events)
    placed(venue, poller, vertical())
    venue.fill("7", 0, 2, 3.0)
    venue.fill("7", 1, 4, 1.2)
    await poller.poll()  # the first event fails: both legs' watermarks go back
    assert events.items == []
    await poller.poll()
    assert [f.id for f in events.fills] == ["7-0-2", "7-1-4"]


async def test_an_order_tracked_with_booked_legs_reports_only_the_rest() -> None:
    venue, events = Venue(), Events()
    poller = make(venue, events)
    booked = vertical(leg_fills={LONG: [2.0, 3.0], SHORT: [2.0, 1.2]})
    placed(venue, poller, booked)
    venue.fill("7", 0, 2, 3.0)
    venue.fill("7", 1, 4, 1.3)
    await poller.poll()
    assert [(f.id, f.quantity, f.price) for f in events.fills] == [("7-1-4", 2, 1.4)]


async def test_an_unanswered_spread_found_by_tag_keeps_our_legs() -> None:
    venue, events = Venue(), Events()
    poller = make(venue, events)
    poller.unresolved(vertical("o9"))
    venue.orders["12"] = Raw(
        "12",
        "o9",
        state="part",
        legs=[Leg(LONG, Intent.BUY, 2, 1, 3.0), Leg(SHORT, Intent.SELL_SHORT, 4)],
    )
    await poller.poll()
    assert not poller.pending
    assert [(f.id, f.symbol, f.strategy) for f in events.fills] == [("12-0-1", LONG, "s")]


async def test_fills_for_after_a_restart_learns_the_legs() -> None:
    venue, events = Venue(), Events()
    poller = make(venue, events)  # a new process: nothing tracked
    venue.orders["3"] = Raw(
        "3",
        "o3",
        state="part",
        legs=[Leg(LONG, Intent.BUY, 2, 2, 3.0), Leg(SHORT, Intent.SELL_SHORT, 4, 2, 1.2)],
    )
    report = to_report(venue.orders["3"])
    fills = await poller.fills_for("o3", report)
    assert [(f.id, f.symbol, f.intent, f.quantity) for f in fills] == [
        ("3-0-2", LONG, Intent.BUY, 2),
        ("3-1-2", SHORT, Intent.SELL_SHORT, 2),
    ]
    assert await poller.fills_for("o3", report) == []
    tracked = poller.tracked["3"]
    assert [(leg.symbol, leg.ratio) for leg in tracked.legs] == [(LONG, 1), (SHORT, 2)]
    venue.fill("3", 1, 4, 1.3, state="done")
    await poller.poll()
    assert [(f.id, f.quantity) for f in events.fills] == [("3-1-4", 2)]
    assert events.statuses[-1] is OrderStatus.FILLED


async def test_fills_for_from_the_callers_baseline() -> None:
    venue = Venue()
    poller = make(venue)
    venue.orders["4"] = Raw(
        "4",
        "o4",
        state="part",
        legs=[Leg(LONG, Intent.BUY, 2, 2, 3.0), Leg(SHORT, Intent.SELL_SHORT, 4, 4, 1.2)],
    )
    report = to_report(venue.orders["4"])
    # per leg: the short leg is booked, the long one not at all
    fills = await poller.fills_for("o4", report, leg_fills={SHORT: [4, 1.2]})
    assert [(f.id, f.quantity) for f in fills] == [("4-0-2", 2)]
    poller.tracked.clear()
    # in units of the spread: one unit booked = 1 long + 2 short
    fills = await poller.fills_for("o4", report, filled_quantity=1)
    assert [(f.id, f.quantity) for f in fills] == [("4-0-2", 1), ("4-1-4", 2)]


async def test_filled_waits_until_every_legs_execution_is_reported() -> None:
    venue, events = Venue(), Events()
    poller = make(venue, events)
    placed(venue, poller, vertical())
    venue.fill("7", 0, 2, 3.0)
    venue.fill("7", 1, 4, 0.0, state="done")  # executed, but no price for it yet
    await poller.poll()
    assert [f.id for f in events.fills] == ["7-0-2"]
    assert OrderStatus.FILLED not in events.statuses and "7" in poller.tracked
    venue.fill("7", 1, 4, 1.2, state="done")
    await poller.poll()
    assert [f.id for f in events.fills] == ["7-0-2", "7-1-4"]
    assert events.statuses[-1] is OrderStatus.FILLED and not poller.tracked
