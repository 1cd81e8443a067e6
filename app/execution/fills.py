"""Broker events for one account, in arrival order: status changes, and fills booked
into the book and stored in one write per batch (a replay refuses the batch, which is
booked again without it; a failed write undoes it, newest first, for the reconciler)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.brokers.base import BrokerEvent
from app.execution.events import EventBatches
from app.execution.store import (
    FillWrite,
)
from app.models.orders import Fill, Order, OrderStatus, Qty
from app.observability.metrics import (
    FILLS,
    ORDERS,
)
from app.portfolio.book import Checkpoint

if TYPE_CHECKING:
    from app.execution.engine import ExecutionEngine

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Booked:
    """A fill booked in memory, not yet stored: what storing it writes, and what undoes it."""

    event: BrokerEvent
    order: Order
    write: FillWrite
    before: tuple[OrderStatus, Qty, float | None, float]
    checkpoint: Checkpoint
    legs_before: dict[str, list[float]]


def spread_filled(order: Order, fill: Fill) -> None:
    """A leg's execution on a spread order: the leg's contracts and average, the units
    complete on every leg (``filled_quantity``) and the signed net per unit so far."""
    qty, avg = order.leg_fills.get(fill.symbol, [0.0, 0.0])
    total = qty + fill.quantity
    order.leg_fills[fill.symbol] = [total, (avg * qty + fill.price * fill.quantity) / total]
    legs = order.request.legs
    units = min(order.leg_fills.get(leg.symbol, [0.0])[0] / leg.ratio for leg in legs)
    order.filled_quantity = int(units) if float(units).is_integer() else units
    if all(leg.symbol in order.leg_fills for leg in legs):
        order.avg_fill_price = round(
            sum(leg.side.sign * leg.ratio * order.leg_fills[leg.symbol][1] for leg in legs), 6
        )


class FillBooker:
    """The engine's fill half."""

    def __init__(self, engine: ExecutionEngine) -> None:
        self.engine = engine
        self.events = EventBatches(self._handle_events)  # broker events, batched in order
        self.reconcile_later: set[str] = set()  # orders whose fill could not be stored

    async def on_broker_event(self, event: BrokerEvent) -> None:
        """Queued and handled in arrival order; fills that arrive together are booked
        together (see ``_handle_events``). Returns once this event is handled."""
        await self.events.put(event)

    async def _handle_events(self, events: list[BrokerEvent]) -> list[BaseException | None]:
        """A batch of broker events, in order: each run of fills is booked in memory and
        stored in one write, a status change on its own."""
        outcomes: list[BaseException | None] = [None] * len(events)
        run: list[int] = []  # positions of the fills waiting to be stored together
        for i, event in enumerate([*events, None]):
            if event is not None and event.fill is not None:
                run.append(i)
                continue
            if run:
                error = await self._book_fills([events[j] for j in run])
                for j in run:
                    outcomes[j] = error
                run = []
            if event is None:
                break
            try:
                async with self.engine.lock:
                    await self._status_event(event)
            except Exception as exc:  # (its caller gets it, as with a lone event)
                outcomes[i] = exc
        return outcomes

    async def _event_order(self, event: BrokerEvent) -> Order | None:
        order = self.engine.orders.get(event.order_id) or await self.engine.store.get_order(
            event.order_id
        )
        if order is None:
            log.warning("broker event for unknown order %s", event.order_id)
            return None
        if event.broker_order_id and not order.broker_order_id:
            order.broker_order_id = event.broker_order_id
        return order

    async def _status_event(self, event: BrokerEvent) -> None:
        order = await self._event_order(event)
        if order is not None and (
            event.status is not OrderStatus.SUBMITTED
            or order.status is OrderStatus.NEW
            or order.status is OrderStatus.UNKNOWN
        ):
            await self.engine.transition(order, event.status, event.reason)

    async def _book_fills(self, events: list[BrokerEvent]) -> Exception | None:
        """Book fills in memory, store them (one script), and undo them if the store says
        some were booked before (a replay or redelivery: the script is the one dedupe; the
        others are booked again without them) or the write failed.

        Only this task books fills, so they are stored in the order booked. The engine
        lock covers the booking and the undoing, not the write: alerts are decided
        meanwhile, on a book that already holds these fills (they did happen at the
        broker; only our record of them is in flight)."""
        while events:
            async with self.engine.lock:
                booked: list[Booked] = []
                for event in events:
                    order = await self._event_order(event)
                    if order is not None and event.fill is not None:
                        booked.append(self._book_fill(order, event.fill, event))
                if not booked:
                    return None
                # (the book is serialised here, under the lock; written when awaited)
                saving = self.engine.store.save_fills([b.write for b in booked], self.engine.book)
            try:
                replays = await saving
            except Exception as exc:
                # stored or not (the reply may be what was lost): memory must not run ahead
                # of Redis (the next fill would store these in its book, and a restart
                # would replay them). Undo them; the watcher reloads the orders and book
                # from Redis, then reconciles whatever is still missing.
                async with self.engine.lock:
                    for b in reversed(booked):  # newest first: each checkpoint restored exactly
                        self._undo_fill(b)
                    self.reconcile_later.update(b.order.id for b in booked)
                    self.engine.reconciler.count_unresolved()
                return exc
            async with self.engine.lock:
                if replays:
                    for b in reversed(booked):
                        self._undo_fill(b)
                    skip = set(replays)  # (a fill twice in the batch: its later copies)
                    events = [b.event for i, b in enumerate(booked) if i not in skip]
                    continue
                for b in booked:
                    self._fill_booked(b)
                self.engine.risk.marked(self.engine.clock())  # loss velocity, the daily loss latch
                self.engine.update_gauges()
            return None
        return None

    def _book_fill(self, order: Order, fill: Fill, event: BrokerEvent) -> Booked:
        """The fill applied to the order and the book, in memory only."""
        if fill.account != self.engine.label:  # the journal keeps each account apart
            fill = fill.model_copy(update={"account": self.engine.label})
        before = (order.status, order.filled_quantity, order.avg_fill_price, order.updated_at)
        legs_before = {k: list(v) for k, v in order.leg_fills.items()}
        checkpoint = self.engine.book.checkpoint(fill.symbol, order.id)
        now = self.engine.clock()
        submitted = ""
        if order.status is OrderStatus.NEW:  # filled on submit: store SUBMITTED with the fill
            order.status = OrderStatus.SUBMITTED
            submitted = order.model_copy(update={"updated_at": now}).model_dump_json()
        if order.request.legs:  # (its leg_fills are restored by ``_undo_fill``)
            spread_filled(order, fill)
        else:
            prev = order.filled_quantity
            order.filled_quantity = prev + fill.quantity
            order.avg_fill_price = (
                (order.avg_fill_price or 0.0) * prev + fill.price * fill.quantity
            ) / order.filled_quantity
        order.status = (
            OrderStatus.FILLED
            if order.filled_quantity >= order.request.quantity
            else OrderStatus.PARTIALLY_FILLED
        )
        order.updated_at = now
        self.engine.book.apply_fill(fill, order.id)
        write = FillWrite(fill, order.id, order.model_dump_json(), order.status.terminal, submitted)
        return Booked(event, order, write, before, checkpoint, legs_before)

    def _fill_booked(self, b: Booked) -> None:
        """What follows a stored fill: metrics, the order's end, brackets (the book has it
        already: ``_book_fill``)."""
        order = b.order
        if b.write.submitted_raw:
            ORDERS.labels(self.engine.broker.name, OrderStatus.SUBMITTED.value).inc()
        FILLS.labels(self.engine.broker.name).inc()
        status = OrderStatus.FILLED if b.write.terminal else OrderStatus.PARTIALLY_FILLED
        ORDERS.labels(self.engine.broker.name, status.value).inc()
        if b.write.terminal:
            self.engine.orders.pop(order.id, None)
            self.engine.book.order_done(order.id)
            self.engine.brackets.add(order)

    def _undo_fill(self, b: Booked) -> None:
        b.order.status, b.order.filled_quantity, b.order.avg_fill_price, b.order.updated_at = (
            b.before
        )
        b.order.leg_fills = b.legs_before
        self.engine.book.restore(b.checkpoint)
