"""Order tracking for brokers that learn of their orders' progress by polling.

Why here: a broker without a push channel for executions (Tradier today; the next REST
broker too) needs the same three things, and they are easy to get subtly wrong:

* **tracking** our orders by our client order id (the broker's tag) and the broker's
  order id, including orders whose placement went unanswered (``pending``, found again
  by tag) and orders this process did not submit (adopted after a restart);
* **cumulative to per-execution**: brokers report execution so far (quantity and
  average price); each poll's growth becomes one ``Fill`` of the delta at the price
  that makes the averages agree, with id ``{broker order id}-{cumulative quantity}``
  so a redelivery of the same step is the same fill (a spread's legs: ``legs.py``);
* **the loop**: poll while orders are open, wait ``interval`` (the one retry policy's
  waits after failures), report through the broker's event handler, stop cleanly.

The broker keeps its wire format to itself: it hands ``OrderPoller`` a fetch of its
raw orders and a mapper from one raw order to a typed ``OrderReport``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Generic, TypeVar

from app.brokers.base import BrokerError, BrokerEvent, EventHandler
from app.brokers.legs import LegFills, copy_legs, new_leg_fills, rebase
from app.brokers.tracking import OrderReport, Tracked, fill_price
from app.models.orders import Fill, Order, OrderStatus, Qty
from app.retry import RetryPolicy

__all__ = ["OrderPoller", "OrderReport", "Tracked", "fill_price"]

log = logging.getLogger(__name__)

Raw = TypeVar("Raw")


class OrderPoller(Generic[Raw]):
    """Tracks one account's orders at a polling broker and reports their progress.

    ``fetch`` reads the account's orders (raw; in placement order, so the first with a
    pending tag is the one adopted); ``fetch_one`` one order by the broker's id, for a
    tracked order the listing no longer shows (a ``BrokerError`` or a falsy answer: try
    next poll); ``report`` maps a raw order. ``tracked`` holds open orders by broker id,
    ``pending`` unanswered placements by our id until ``pending_ttl`` passes.
    """

    def __init__(
        self,
        *,
        broker: str,
        account: str,
        fetch: Callable[[], Awaitable[Iterable[Raw]]],
        report: Callable[[Raw], OrderReport],
        fetch_one: Callable[[str], Awaitable[Raw | None]] | None = None,
        interval: float = 1.0,
        retry: RetryPolicy | None = None,
        pending_ttl: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.broker = broker
        self.account = account
        self.fetch = fetch
        self.report = report
        self.fetch_one = fetch_one
        self.interval = interval
        self.retry = retry or RetryPolicy()
        self.pending_ttl = pending_ttl
        self.clock = clock
        self.tracked: dict[str, Tracked] = {}  # broker order id -> state, open orders only
        self.pending: dict[str, tuple[Tracked, float]] = {}  # our id -> (state, since)
        self.on_event: EventHandler | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._lock = asyncio.Lock()

    # -- lifecycle ------------------------------------------------------------------
    def start(self, on_event: EventHandler) -> None:
        """Report through ``on_event`` from a background loop (one per poller)."""
        self.on_event = on_event
        self._stopping = False
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name=f"{self.broker}-order-poller")

    async def stop(self) -> None:
        """End the loop, letting a pass in flight finish its handler call (5 s at most)."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._task), 5.0)
            self._task = None

    def wake(self) -> None:
        """Poll now rather than after the interval (an order was placed or canceled)."""
        self._wake.set()

    async def run(self) -> None:
        """Poll every ``interval``; after failures wait the retry policy's waits instead."""
        waits = self.retry.waits()
        while not self._stopping:
            self._wake.clear()
            try:
                await self.poll()
                waits.reset()
                delay = self.interval
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = max(self.interval, next(waits))
                log.warning(
                    "%s order poll failed (%d in a row): %s", self.broker, waits.failures, exc
                )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    # -- what the broker tells us -----------------------------------------------------
    def track(self, order: Order, broker_order_id: str, status: OrderStatus | None = None) -> None:
        """Follow one of our orders the broker took (kept if already followed)."""
        self.tracked.setdefault(broker_order_id, Tracked.of(order, broker_order_id, status))
        self._wake.set()

    def unresolved(self, order: Order) -> None:
        """Remember an order whose placement went unanswered; polls look for its tag."""
        self.pending[order.id] = (Tracked.of(order, ""), self.clock())
        self._wake.set()

    def adopt(self, order_id: str, broker_order_id: str) -> Tracked | None:
        """The tracked state of our order now known by ``broker_order_id`` (or None)."""
        tracked = self.tracked.get(broker_order_id)
        entry = self.pending.pop(order_id, None)
        if tracked is None and entry is not None:
            tracked = entry[0]
            tracked.broker_order_id = broker_order_id
            self.tracked[broker_order_id] = tracked
        return tracked

    def expire_pending(self) -> None:
        now = self.clock()
        for tag, (_, since) in list(self.pending.items()):
            if now - since > self.pending_ttl:
                log.warning(
                    "order %s: no %s order with this tag after %.0fs; left to reconciliation",
                    tag,
                    self.broker,
                    now - since,
                )
                del self.pending[tag]

    # -- polling --------------------------------------------------------------------
    async def poll(self) -> None:
        """One pass: report status changes and new executions of our open orders."""
        self.expire_pending()
        if not self.tracked and not self.pending:
            return
        listing = [self.report(raw) for raw in await self.fetch()]
        if self.pending:  # placements that went unanswered: did the broker take them?
            async with self._lock:
                for found in listing:
                    if found.tag and found.tag in self.pending:
                        log.info(
                            "%s order %s found by tag %s after an unanswered place",
                            self.broker,
                            found.broker_order_id,
                            found.tag,
                        )
                        self.adopt(found.tag, found.broker_order_id)
        by_id = {r.broker_order_id: r for r in listing}
        for broker_id in list(self.tracked):
            report = by_id.get(broker_id) or await self.read_one(broker_id)
            if report is not None:
                await self.observe(report)

    async def read_one(self, broker_order_id: str) -> OrderReport | None:
        """An order the listing does not show (an older GTC order?), asked for by id."""
        if self.fetch_one is None:
            return None
        try:
            raw = await self.fetch_one(broker_order_id)
        except BrokerError as exc:
            log.warning("cannot read %s order %s: %s", self.broker, broker_order_id, exc)
            return None
        return self.report(raw) if raw else None

    async def observe(self, report: OrderReport) -> None:
        """Turn one report into events: new executions first, then the status.

        If the handler fails, the watermark goes back so the next poll reports again
        (same fill ids, so a consumer that did record them ignores the repeat).
        """
        broker_id = report.broker_order_id
        async with self._lock:
            tracked = self.tracked.get(broker_id)
            if tracked is None:
                return
            before = (tracked.filled, tracked.avg, tracked.status, copy_legs(tracked.legs))
            events: list[BrokerEvent] = []
            fills = self.new_fills(tracked, report)
            for n, fill in enumerate(fills, 1):
                done = n == len(fills) and tracked.done
                fill_status = OrderStatus.FILLED if done else OrderStatus.PARTIALLY_FILLED
                events.append(BrokerEvent(tracked.order_id, fill_status, broker_id, fill=fill))
                tracked.status = fill_status
            status = report.status
            if status is OrderStatus.FILLED and not tracked.done and tracked.legs:
                log.warning(  # never FILLED with executions unbooked: wait for the legs
                    "%s order %s is filled but not all its legs' executions are reported",
                    self.broker,
                    broker_id,
                )
                status = tracked.status or OrderStatus.SUBMITTED
            if status is OrderStatus.UNKNOWN:
                log.warning(
                    "%s order %s has unmapped status %r",
                    self.broker,
                    broker_id,
                    report.broker_status,
                )
            elif status is OrderStatus.SUBMITTED and tracked.executed:
                pass  # a status lagging its own executions: never step back
            elif status is not tracked.status:
                events.append(
                    BrokerEvent(tracked.order_id, status, broker_id, reason=report.reason)
                )
                tracked.status = status
            if status.terminal:
                self.tracked.pop(broker_id, None)
            for event in events:
                if not await self.emit(event):
                    tracked.filled, tracked.avg, tracked.status, tracked.legs = before
                    self.tracked[broker_id] = tracked
                    return

    async def fills_for(
        self,
        order_id: str,
        report: OrderReport,
        filled_quantity: Qty | None = None,
        avg_fill_price: float | None = None,
        leg_fills: LegFills | None = None,
    ) -> list[Fill]:
        """Executions of our order not yet reported (reconciliation), from a baseline:
        ``filled_quantity``/``avg_fill_price`` (a spread: ``leg_fills``, else units x
        ratio) when the caller holds them, else what this process reported, else
        nothing. Advances the watermark; an open order is followed from then on."""
        broker_id = report.broker_order_id
        async with self._lock:
            tracked = self.adopt(order_id, broker_id) or Tracked(order_id, broker_id)
            if filled_quantity is not None:
                tracked.filled = filled_quantity
                tracked.avg = avg_fill_price
            if report.legs and (filled_quantity is not None or leg_fills is not None):
                rebase(tracked, report, filled_quantity, leg_fills)
            fills = self.new_fills(tracked, report)
            if not report.status.terminal:
                self.tracked[broker_id] = tracked
                self._wake.set()
            return fills

    def new_fills(self, tracked: Tracked, report: OrderReport) -> list[Fill]:
        """New executions as Fills: one of the order, or one per leg that grew (a spread)."""
        if tracked.legs or report.legs:
            return new_leg_fills(tracked, report, self.broker, self.account, self.clock())
        fill = self.new_fill(tracked, report)
        return [fill] if fill is not None else []

    def new_fill(self, tracked: Tracked, report: OrderReport) -> Fill | None:
        """The execution since ``tracked``'s watermark as one Fill (and advance it), or None.

        An adopted order learns symbol, side and size from the report. A FILLED report
        with no executed quantity but a price is the whole order (some brokers omit it).
        """
        if tracked.symbol is None:
            tracked.symbol = report.symbol
        if tracked.intent is None:
            tracked.intent = report.intent
        if tracked.quantity is None:
            tracked.quantity = report.quantity
        cum = report.filled
        if cum == 0 and report.status is OrderStatus.FILLED and report.avg_price:
            cum = tracked.quantity or 0
        delta = cum - tracked.filled
        if delta <= 0:
            return None
        if tracked.symbol is None or tracked.intent is None:
            log.warning(
                "%s order %s lacks symbol/side; fill deferred",
                self.broker,
                tracked.broker_order_id,
            )
            return None
        price = fill_price(tracked, report, delta)
        if not price:
            log.warning(
                "%s order %s executed %s without a price; fill deferred",
                self.broker,
                tracked.broker_order_id,
                delta,
            )
            return None
        tracked.filled, tracked.avg = cum, report.avg_price
        return Fill(
            id=f"{tracked.broker_order_id}-{cum}",
            order_id=tracked.order_id,
            broker=self.broker,
            account=self.account,
            symbol=tracked.symbol,
            intent=tracked.intent,
            quantity=delta,
            price=round(price, 6),
            time=report.time or self.clock(),
            strategy=tracked.strategy,
        )

    async def emit(self, event: BrokerEvent) -> bool:
        """Hand one event to the broker's handler; False when the handler failed."""
        if self.on_event is None:
            return True
        try:
            await self.on_event(event)
        except Exception:
            log.exception(
                "event handler failed for %s order %s", self.broker, event.broker_order_id
            )
            return False
        return True
