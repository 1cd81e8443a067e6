"""Bringing an account's engine in line with the broker and with Redis: open orders at
start-up, the broker's own book, orders left unknown or unsent, fills whose write failed,
held alerts, brackets to manage again. The engine's other half: what is true when no
alert is being decided.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from app.brokers.base import BrokerError, BrokerEvent
from app.execution.brackets import REASONS, exit_alert_id
from app.models.orders import Order, OrderStatus
from app.observability.metrics import EXECUTION_UNRESOLVED

if TYPE_CHECKING:
    from app.execution.engine import ExecutionEngine

log = logging.getLogger(__name__)


class Reconciler:
    def __init__(self, engine: ExecutionEngine) -> None:
        self.engine = engine

    async def restore_brackets(self, scan: int = 1000) -> None:
        """Brackets of entries still held whose exit was not placed (an engine that took
        the account over, or a restart, keeps managing the stops)."""
        for order in await self.engine.store.recent_orders(scan):
            req = order.request
            if order.status is not OrderStatus.FILLED or not (req.stop_loss or req.take_profit):
                continue
            held = self.engine.book.position(req.symbol)
            if held == 0 or (held > 0) != (req.side.sign > 0):
                continue
            exits = [
                await self.engine.store.alert_decision(exit_alert_id(order.id, r)) for r in REASONS
            ]
            if all(e is None for e in exits):
                self.engine.brackets.add(order)
        if self.engine.brackets.open:
            log.info("restored %d brackets (stop/target exits)", len(self.engine.brackets.open))

    async def watch_unknown(self, every: float = 5.0) -> None:
        """Orders left UNKNOWN by a broker timeout: ask the broker by tag until it knows.
        Orders still NEW long after acceptance (their submit failed with Redis, maybe
        after the broker had stored it), and orders whose fill could not be stored:
        reconcile them, sending those it never saw. Alerts whose write had an unknown
        outcome: look up the stored decision."""
        while True:
            await asyncio.sleep(every)
            try:
                await self.watch_once()
            except Exception:  # the watcher must outlive any one bad order
                log.exception("order watcher round failed; next round in %.0fs", every)

    async def watch_once(self) -> None:
        stale = self.engine.clock() - 2 * self.engine.broker_timeout
        for alert_id in list(self.engine.decider.unresolved):
            with contextlib.suppress(RedisError, OSError):
                await self.engine.resolve(alert_id)
        retry, self.engine.fills.reconcile_later = self.engine.fills.reconcile_later, set()
        for order_id in retry:
            try:  # Redis is the truth for a fill whose write may or may not have landed
                await self._reload(order_id)
            except (RedisError, OSError) as exc:
                log.warning("reloading order %s failed, will retry: %s", order_id, exc)
                self.engine.fills.reconcile_later.add(order_id)
        for order in [
            o
            for o in self.engine.orders.values()
            if o.id not in self.engine.lifecycle.sending
            and o.request.alert_id not in self.engine.decider.unresolved
            and (
                (o.status is OrderStatus.NEW and o.created_at < stale)
                or o.status is OrderStatus.UNKNOWN
                or o.id in retry
            )
        ]:
            try:
                await self.reconcile_order(order)
            except (BrokerError, RedisError, OSError) as exc:
                log.warning("reconciling order %s failed, will retry: %s", order.id, exc)
                if order.id in retry:
                    self.engine.fills.reconcile_later.add(order.id)
        self.count_unresolved()

    def count_unresolved(self) -> None:
        EXECUTION_UNRESOLVED.set(
            len(self.engine.decider.unresolved) + len(self.engine.fills.reconcile_later)
        )

    async def _reload(self, order_id: str) -> None:
        """Take one order and the book back from Redis (every fill's write stores the
        whole book, so Redis never runs behind what was booked)."""
        async with self.engine.lock:
            order = await self.engine.store.get_order(order_id)
            stored = await self.engine.store.load_book_data()
            if stored is not None:
                self.engine.book.load(stored)
                self.engine.risk.rebased()
            if order is None:
                return
            if order.status.terminal:
                self.engine.orders.pop(order_id, None)
                self.engine.book.order_done(order_id)
            else:
                self.engine.orders[order_id] = order
        self.engine.update_gauges()

    async def adopt_at_session_start(self) -> None:
        """The new day's loss budget is measured from the broker's equity at the open
        (positions are reconciled at start-up, not here: fills may be in flight)."""
        try:
            account = await self.engine.broker.balances()  # (no lock held over the network)
            if account.equity <= 0:
                return
            async with self.engine.lock:
                self.engine.book.day_start_equity = account.equity
                self.engine.risk.rebased()
                await self.engine.store.save_book(self.engine.book)
        except (BrokerError, RedisError, OSError) as exc:
            log.warning("session start: the broker's equity could not be read (%s)", exc)
        self.engine.update_gauges()

    async def adopt_broker_book(self, *, first_seen: bool = False) -> None:
        """A broker that keeps its own book (Tradier) is the truth at start-up: positions
        and cash we disagree on are taken from it, loudly, before any alert is decided.
        An account seen for the first time starts its day from the broker's equity."""
        theirs = {p.symbol: p for p in await self.engine.broker.positions()}
        ours = {p.symbol: p for p in self.engine.book.positions()}
        changed = False
        for symbol in sorted(set(theirs) | set(ours)):
            want = theirs.get(symbol)
            have = ours.get(symbol)
            qty = want.quantity if want else 0
            if (have.quantity if have else 0) == qty:
                continue
            log.warning(
                "reconcile: %s position is %s at the broker, %s here; adopting the broker's",
                symbol,
                qty,
                have.quantity if have else 0,
            )
            self.engine.book.set_position(symbol, qty, want.avg_price if want else 0.0)
            changed = True
        account = await self.engine.broker.balances()
        if abs(account.cash - self.engine.book.cash) > 0.01:
            log.warning(
                "reconcile: cash is %.2f at the broker, %.2f here; adopting the broker's",
                account.cash,
                self.engine.book.cash,
            )
            self.engine.book.cash = account.cash
            changed = True
        if first_seen or self.engine.book.day_start_equity is None:
            self.engine.book.day = self.engine.risk.trading_day(self.engine.clock())
            self.engine.book.day_start_equity = self.engine.book.equity - account.realized_pnl_today
            changed = True
        if changed:
            await self.engine.store.save_book(self.engine.book)
            self.engine.risk.rebased()

    async def reconcile(self) -> None:
        """At start-up, bring every open order in line with the broker."""
        for order in await self.engine.store.open_orders():
            self.engine.orders[order.id] = order
            self.engine.risk.on_order_submitted(order.request, order.created_at)
            self.engine.book.order_submitted(order.request, None)
            await self.reconcile_order(order, at_start=True)

    async def reconcile_order(self, order: Order, *, at_start: bool = False) -> None:
        """Adopt the broker's status, replay fills we missed, submit an order that never
        reached it, and never resubmit one the broker may have."""
        state = await self.engine.broker.find_by_tag(order.id)
        if state is None:
            if order.status is OrderStatus.NEW:
                log.warning(
                    "order %s was accepted but never reached the broker; sending it", order.id
                )
                if at_start:
                    self.engine.send([order])
                else:
                    await self.engine.submit(order)
            elif at_start:
                await self.engine.transition(
                    order, OrderStatus.REJECTED, "not found at the broker on reconciliation"
                )
            return  # (an UNKNOWN order the broker does not know yet: ask again later)
        # a broker that redelivers a fill we failed to book (Tradier's poller) is not
        # replayed while running: both at once could book a partial fill twice
        if at_start or not self.engine.broker.redelivers_fills:
            # what we already booked, so a broker that reports running totals
            # (Tradier) replays only the part we missed
            missed = await self.engine.broker.fills_for(
                order.id,
                filled_quantity=order.filled_quantity,
                avg_fill_price=order.avg_fill_price,
                leg_fills=order.leg_fills or None,
            )
            for fill in missed:
                if fill.strategy != order.request.strategy:
                    fill = fill.model_copy(update={"strategy": order.request.strategy})
                await self.engine.on_broker_event(
                    BrokerEvent(order.id, state.status, state.broker_order_id, fill=fill)
                )
        current = self.engine.orders.get(order.id)
        if (
            current is not None
            and current.status != state.status
            and not current.status.terminal
            and state.status is not OrderStatus.UNKNOWN
        ):
            await self.engine.on_broker_event(
                BrokerEvent(order.id, state.status, state.broker_order_id)
            )

    # -- alerts ----------------------------------------------------------------
