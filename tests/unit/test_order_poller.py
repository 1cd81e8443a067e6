"""The shared order poller against a tiny fake broker (no Tradier): tracking, cumulative
to per-execution fills, redelivery, adoption, and the loop's backoff."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, replace
from typing import Any

from app.brokers.base import BrokerError, BrokerEvent
from app.brokers.polling import OrderPoller, OrderReport, Tracked
from app.models.orders import Fill, Intent, Order, OrderRequest, OrderStatus
from app.retry import Backoff, RetryPolicy
from tests.support.poll import until


@dataclass
class Raw:
    """The fake broker's own order record (cumulative, as polling brokers report)."""

    id: str
    tag: str
    state: str = "working"
    cum: int = 0
    avg: float = 0.0


STATES = {
    "working": OrderStatus.SUBMITTED,
    "part": OrderStatus.PARTIALLY_FILLED,
    "done": OrderStatus.FILLED,
    "gone": OrderStatus.CANCELED,
}


def to_report(raw: Raw) -> OrderReport:
    return OrderReport(
        broker_order_id=raw.id,
        status=STATES.get(raw.state, OrderStatus.UNKNOWN),
        filled=raw.cum,
        avg_price=raw.avg or None,
        symbol="XYZ",
        intent=Intent.BUY,
        quantity=100,
        tag=raw.tag,
        time=1_700_000_000.0,
        reason=f"fake: {raw.state}",
        broker_status=raw.state,
    )


class FakeBroker:
    """Orders by id; the open listing drops closed ones (``one`` still reads them)."""

    def __init__(self) -> None:
        self.orders: dict[str, Raw] = {}
        self.listings = 0
        self.failures = 0  # the next this many listings raise

    async def listing(self) -> list[Raw]:
        self.listings += 1
        if self.failures:
            self.failures -= 1
            raise BrokerError("venue down", retryable=True)
        return [replace(o) for o in self.orders.values() if o.state in ("working", "part")]

    async def one(self, broker_order_id: str) -> Raw | None:
        found = self.orders.get(broker_order_id)
        return replace(found) if found else None

    def set(self, broker_order_id: str, **kw: Any) -> None:
        for key, value in kw.items():
            setattr(self.orders[broker_order_id], key, value)


class Events:
    def __init__(self, fail: int = 0) -> None:
        self.items: list[BrokerEvent] = []
        self.fail = fail  # the next this many calls raise

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


class RecordingBackoff(Backoff):
    def __init__(self, policy: RetryPolicy, rng: random.Random | None = None) -> None:
        super().__init__(policy, rng)
        self.waited: list[float] = []
        self.resets = 0

    def __next__(self) -> float:
        wait = super().__next__()
        self.waited.append(wait)
        return wait

    def reset(self) -> None:
        self.resets += 1
        super().reset()


class RecordingPolicy(RetryPolicy):
    """Tiny waits, and the loop's ``Backoff`` kept for the test to read."""

    def waits(self, rng: random.Random | None = None) -> Backoff:
        backoff = RecordingBackoff(self, rng)
        BACKOFFS.append(backoff)
        return backoff


BACKOFFS: list[RecordingBackoff] = []
TINY = RecordingPolicy(wait_initial=0.001, wait_max=0.004, wait_jitter=0.0)


def make(venue: FakeBroker, events: Events | None = None) -> OrderPoller[Raw]:
    poller = OrderPoller(
        broker="fake",
        account="A1",
        fetch=venue.listing,
        report=to_report,
        fetch_one=venue.one,
        interval=0.005,
        retry=TINY,
    )
    poller.on_event = events
    return poller


def order(oid: str = "o1") -> Order:
    now = time.time()
    return Order(
        id=oid,
        broker="fake",
        account="A1",
        request=OrderRequest(
            client_order_id=oid, symbol="XYZ", intent=Intent.BUY, quantity=100, strategy="s"
        ),
        created_at=now,
        updated_at=now,
    )


def placed(venue: FakeBroker, poller: OrderPoller[Raw], oid: str = "o1", bid: str = "1") -> None:
    venue.orders[bid] = Raw(bid, oid)
    poller.track(order(oid), bid)


async def test_cumulative_steps_become_per_execution_fills() -> None:
    venue, events = FakeBroker(), Events()
    poller = make(venue, events)
    placed(venue, poller)
    await poller.poll()
    venue.set("1", state="part", cum=40, avg=10.0)
    await poller.poll()
    venue.set("1", state="done", cum=100, avg=10.6)
    await poller.poll()
    assert [(f.id, f.quantity, f.price) for f in events.fills] == [
        ("1-40", 40, 10.0),
        ("1-100", 60, 11.0),  # (100 x 10.6 - 40 x 10) / 60
    ]
    assert events.statuses == [
        OrderStatus.SUBMITTED,
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.FILLED,
    ]
    fill = events.fills[0]
    assert (fill.order_id, fill.broker, fill.account, fill.symbol, fill.strategy) == (
        "o1",
        "fake",
        "A1",
        "XYZ",
        "s",
    )
    assert not poller.tracked
    listings = venue.listings
    await poller.poll()  # nothing open: nothing fetched
    assert venue.listings == listings


async def test_a_repeated_report_says_nothing_new() -> None:
    venue, events = FakeBroker(), Events()
    poller = make(venue, events)
    placed(venue, poller)
    venue.set("1", state="part", cum=20, avg=5.0)
    for _ in range(3):
        await poller.poll()
    assert [f.id for f in events.fills] == ["1-20"]
    assert events.statuses == [OrderStatus.PARTIALLY_FILLED]


async def test_a_redelivery_after_a_failed_handler_is_the_same_fill() -> None:
    venue, events = FakeBroker(), Events(fail=1)
    poller = make(venue, events)
    placed(venue, poller)
    venue.set("1", state="part", cum=30, avg=7.0)
    await poller.poll()
    assert events.items == [] and poller.tracked["1"].filled == 0  # watermark went back
    await poller.poll()
    assert [(f.id, f.quantity, f.price) for f in events.fills] == [("1-30", 30, 7.0)]


async def test_a_canceled_order_that_leaves_the_listing_is_reported_once() -> None:
    venue, events = FakeBroker(), Events()
    poller = make(venue, events)
    placed(venue, poller)
    await poller.poll()
    venue.set("1", state="gone")  # the open listing drops it; read by id instead
    for _ in range(3):
        await poller.poll()
    assert events.statuses == [OrderStatus.SUBMITTED, OrderStatus.CANCELED]
    assert events.items[-1].reason == "fake: gone"
    assert not poller.tracked


async def test_an_unanswered_place_is_adopted_by_tag() -> None:
    venue, events = FakeBroker(), Events()
    poller = make(venue, events)
    poller.unresolved(order("o9"))
    await poller.poll()
    assert poller.pending and not events.items  # the venue has nothing yet
    venue.orders["5"] = Raw("5", "o9", state="part", cum=10, avg=2.0)
    await poller.poll()
    assert not poller.pending and events.fills[0].id == "5-10"
    assert events.fills[0].strategy == "s"  # what we submitted, not a guess


async def test_fills_for_adopts_an_order_after_a_restart() -> None:
    venue, events = FakeBroker(), Events()
    poller = make(venue, events)  # a new process: nothing tracked
    venue.orders["3"] = Raw("3", "o3", state="part", cum=60, avg=50.0)
    report = to_report(venue.orders["3"])
    assert [(f.id, f.quantity) for f in await poller.fills_for("o3", report)] == [("3-60", 60)]
    assert await poller.fills_for("o3", report) == []  # already reported
    assert isinstance(poller.tracked["3"], Tracked)  # followed from now on
    venue.set("3", state="done", cum=100, avg=51.0)
    await poller.poll()
    assert [(f.id, f.quantity) for f in events.fills] == [("3-100", 40)]


async def test_the_loop_backs_off_with_the_policy_and_stops_cleanly() -> None:
    venue, events = FakeBroker(), Events()
    poller = make(venue)
    BACKOFFS.clear()
    placed(venue, poller)
    venue.failures = 3
    venue.set("1", state="done", cum=100, avg=4.0)
    poller.start(events)
    try:
        await until(lambda: len(events.fills) == 1)
    finally:
        await poller.stop()
    [backoff] = BACKOFFS
    assert backoff.waited == [TINY.backoff(n) for n in (1, 2, 3)]
    assert backoff.resets >= 1 and backoff.failures == 0  # a success starts over
    venue.orders["2"] = Raw("2", "o2")
    poller.track(order("o2"), "2")  # stopped: an open order is no longer polled
    listings = venue.listings
    await asyncio.sleep(0.05)
    assert venue.listings == listings
