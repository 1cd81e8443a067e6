"""One account's engine: alert -> planned, risk-checked orders -> broker -> fills -> book.

It runs in the process holding the account's lease (``service.py``), which feeds it the
account's alert stream; every write is fenced by that lease. Deciding an alert is
in-memory work plus one Redis round trip (orders + decision, one script); broker calls
run in the background and report through ``on_broker_event``. The planner
(``planner.py``), brackets (``brackets.py``) and reconciliation with the broker and
Redis (``reconcile.py``) are its other parts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson
from redis.exceptions import RedisError

from app.brokers.base import Broker, BrokerError, BrokerEvent
from app.execution.accounts import DEFAULT_ACCOUNT
from app.execution.brackets import Brackets
from app.execution.decisions import AlertDecider
from app.execution.expiry import Expirer
from app.execution.fills import FillBooker
from app.execution.lifecycle import OrderLifecycle
from app.execution.option_decisions import OptionDecider
from app.execution.reconcile import Reconciler
from app.execution.sizing import SizingConfig, SizingRule
from app.execution.store import (
    INSTANCE_TTL_SECONDS,
    ExecutionStore,
)
from app.models.alerts import Alert, AlertAction, Decision
from app.models.market import Quote
from app.models.orders import Order, OrderStatus
from app.notify import outbox as notify_outbox
from app.observability.metrics import (
    DAILY_LOSS_LIMIT,
    DAILY_PNL,
    EXPOSURE,
    KILL_SWITCH,
    OPEN_POSITIONS,
)
from app.options.chains import OptionChains
from app.portfolio.book import FLATTEN_STRATEGY
from app.retry import raise_if_cancelling
from app.risk.engine import RiskEngine
from app.risk.killswitch import KillState

log = logging.getLogger(__name__)

QuoteFn = Callable[[str], Any]


class ExecutionEngine:
    def __init__(
        self,
        store: ExecutionStore,
        broker: Broker,
        risk: RiskEngine,
        quotes: QuoteFn,
        *,
        sizing: SizingConfig | None = None,
        starting_cash: float = 100_000.0,
        alert_ttl: int = 7 * 86_400,
        broker_timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
        adopt_book: bool = True,
        chains: OptionChains | None = None,
        expire_every: float | None = 60.0,
    ) -> None:
        self.store = store
        self.broker = broker
        self.risk = risk
        self.quotes = quotes
        self.sizing = sizing or SizingConfig()
        self.starting_cash = starting_cash
        self.alert_ttl = alert_ttl
        self.broker_timeout = broker_timeout
        self.clock = clock
        self.adopt_book = adopt_book  # take positions/cash from a broker that keeps a book
        self.expire_every = expire_every  # None: the caller runs expiry (backtests, by their clock)
        self.account = store.account  # the namespace of every key of ours
        # what orders, fills, the book and metrics are labelled with: a declared account's
        # id; the single ``default`` account keeps its broker's (as before accounts existed)
        self.label = broker.account if self.account == DEFAULT_ACCOUNT else self.account
        # the account's one book of record: this engine writes it, the risk checks read it
        self.book = risk.book
        self.book.account, self.book.cash = self.label, starting_cash
        risk.on_day_roll = self._day_rolled
        self.orders: dict[str, Order] = {}  # open orders
        self.brackets = Brackets()  # stop-loss / take-profit exits of filled entries
        self.reconciler = Reconciler(self)  # in line with the broker and Redis
        self.decider = AlertDecider(self)  # alert -> orders and decision, stored once
        self.options = OptionDecider(self, chains)  # option alerts: chains, contracts, spreads
        if chains is not None:
            risk.option_quote = chains.quote  # the option checks read the same chains
        self.lifecycle = OrderLifecycle(self)  # orders to the broker, their state machine
        self.fills = FillBooker(self)  # broker events -> the book, stored per batch
        self.lock = asyncio.Lock()
        self.tasks: set[asyncio.Task[None]] = set()
        self._watcher: asyncio.Task[None] | None = None
        self._expiry: asyncio.Task[None] | None = None
        self.expirer = Expirer(self)  # contracts past their expiration session, settled
        self.heartbeat_task: asyncio.Task[None] | None = None
        # names this engine in its alert claims; its heartbeat key says it is alive
        self.instance = uuid.uuid4().hex[:12]
        self.last: dict[str, float] = {}  # last trade per symbol, from the quote fan-out
        self.started = False  # state loaded and reconciled: safe to take alerts
        self._pnl_gauge = DAILY_PNL.labels(self.label)
        self._exposure_gauge = EXPOSURE.labels(self.label)
        self._positions_gauge = OPEN_POSITIONS.labels(self.label)

    # -- lifecycle ---------------------------------------------------------------
    async def start(self) -> None:
        if indexed := await self.store.index_fills():
            log.info("indexed %d earlier fills by symbol (chart marks)", indexed)
        stored = await self.store.load_book_data()
        first_seen = stored is None
        if stored is not None:
            self.book.load(stored)
        kill = await self.store.load_kill_switch()
        if kill:
            self.risk.set_kill_switch(kill, reason="restored")
        KILL_SWITCH.labels(self.label).set(KillState(self.risk.kill_switch.state).level)
        self.risk.rebased()
        await self.broker.start(self.on_broker_event)
        await self.reconciler.reconcile()
        if self.adopt_book and self.broker.keeps_book:
            try:
                await self.reconciler.adopt_broker_book(first_seen=first_seen)
            except BrokerError as exc:
                log.error(
                    "reconcile: could not read the broker's book (%s); using the last persisted one",
                    exc,
                )
        if self.book.roll(self.clock()):
            # first seen (or first start this session): the day starts from what the
            # account holds now (the broker's, for a broker that keeps a book), never a default
            await self.store.save_book(self.book)
            self.risk.rebased()
        await self.reconciler.restore_brackets()
        self.update_gauges()
        await self.store.heartbeat(self.instance)
        self.heartbeat_task = asyncio.create_task(self._beat(), name="engine-heartbeat")
        self._watcher = asyncio.create_task(self.reconciler.watch_unknown(), name="unknown-orders")
        if self.expire_every is not None:
            self.expirer.every = self.expire_every
            self._expiry = asyncio.create_task(self.expirer.run(), name="option-expiry")
        self.started = True

    async def _beat(self) -> None:
        """Keep our heartbeat key alive: while it is, no other engine takes our claims."""
        while True:
            await asyncio.sleep(INSTANCE_TTL_SECONDS / 5)
            try:
                await self.store.heartbeat(self.instance)
            except (RedisError, OSError) as exc:  # claims may be taken over; writes are fenced
                raise_if_cancelling()
                log.warning("engine heartbeat failed: %s", exc)

    async def close(self) -> None:
        """Let in-flight broker calls finish (bounded), stop watchers, close the broker."""
        if not self.started:
            return
        for watcher in (self._watcher, self._expiry):
            if watcher is not None:
                watcher.cancel()
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=5)
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.fills.events.close()
        if self.heartbeat_task is not None:
            self.heartbeat_task.cancel()
        with contextlib.suppress(RedisError, OSError):  # gone: claims left are free at once
            await self.store.drop_heartbeat(self.instance)
        await self.broker.close()

    def _day_rolled(self, now: float) -> None:
        """A new trading day started (the book rolled): for a broker that keeps a book, the
        day's loss budget is measured from its equity."""
        if self.broker.keeps_book and self.started:  # the day starts from the broker's equity
            self.spawn(self.reconciler.adopt_at_session_start())

    # -- broker side (background) ------------------------------------------------
    async def settle(self) -> None:
        """Until the orders being sent, and what filled them, are done (backtests)."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)

    def spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # -- the parts' entry points ------------------------------------------------------
    async def handle_alert(
        self,
        alert: Alert,
        rule: SizingRule | None = None,
        *,
        fresh: bool = False,
        reply: str | None = None,
    ) -> Decision:
        """Decide one alert for this account (see ``AlertDecider.handle_alert``)."""
        return await self.decider.handle_alert(alert, rule, fresh=fresh, reply=reply)

    async def resolve(self, alert_id: str) -> Decision | None:
        return await self.decider.resolve(alert_id)

    async def on_broker_event(self, event: BrokerEvent) -> None:
        """Queued and handled in arrival order; returns once this event is handled."""
        await self.fills.on_broker_event(event)

    def send(self, orders: list[Order]) -> None:
        self.lifecycle.send(orders)

    async def submit(self, order: Order) -> None:
        await self.lifecycle.submit(order)

    async def transition(
        self, order: Order, status: OrderStatus, reason: str | None = None
    ) -> None:
        await self.lifecycle.transition(order, status, reason)

    async def locked_transition(
        self, order_id: str, status: OrderStatus, reason: str | None = None
    ) -> None:
        await self.lifecycle.locked_transition(order_id, status, reason)

    async def cancel(self, order_id: str) -> Order:
        return await self.lifecycle.cancel(order_id)

    # -- quotes, brackets --------------------------------------------------------
    async def on_quote(self, quote: Quote) -> None:
        self.last[quote.symbol] = quote.last
        self.book.mark(quote.symbol, quote.last, quote.time)
        self.risk.on_quote(quote.symbol, quote.last, quote.time)
        await self.broker.on_quote(quote)
        for alert in self.brackets.triggered(quote.symbol, quote.last):
            self.spawn(self._bracket_exit(alert))

    async def _bracket_exit(self, alert: Alert) -> None:
        decision = await self.handle_alert(alert)
        log.info("bracket exit %s: %s %s", alert.alert_id, decision.status, decision.reason or "")

    def update_gauges(self) -> None:
        daily = self.risk.limits.section("daily_loss")
        if daily is not None:
            DAILY_LOSS_LIMIT.labels(self.broker.account).set(daily.max_loss)
        self._pnl_gauge.set(self.book.daily_pnl)
        self._exposure_gauge.set(self.book.gross)
        self._positions_gauge.set(self.book.open_positions)

    # -- admin -------------------------------------------------------------------

    async def flatten(self, symbol: str | None = None, reason: str = "flatten") -> list[Decision]:
        """Close the position in ``symbol`` (or every position): exposure-reducing orders."""
        symbols = [symbol] if symbol else [p.symbol for p in self.book.positions()]
        stamp = uuid.uuid4().hex[:8]
        decisions = []
        for sym in symbols:
            alert = Alert(
                ticker=sym,
                action=AlertAction.FLATTEN,
                strategy=FLATTEN_STRATEGY,
                alert_id=f"{reason}-{sym}-{stamp}",
            )
            decisions.append(await self.handle_alert(alert))
        return decisions

    async def set_kill_switch(self, state: str, reason: str | None = None) -> KillState:
        new = self.risk.set_kill_switch(state, reason=reason)
        await self.store.save_kill_switch(new.value)
        KILL_SWITCH.labels(self.label).set(new.level)
        await notify_outbox.emit(
            self.store.redis, "kill_switch", self.account, state=new.value, reason=reason
        )
        return new

    def risk_snapshot(self) -> dict[str, Any]:
        """Risk state and limits, with the book's money figures rounded as the API shows them."""
        snap = self.risk.snapshot()
        state = self.book.state()
        snap["account"] |= {
            "cash": state.cash,
            "equity": state.equity,
            "buying_power": state.buying_power,
            "gross_exposure": state.gross_exposure,
            "open_positions": state.open_positions,
        }
        snap["daily"] |= {
            "pnl": round(self.book.daily_pnl, 2),
            "day": self.book.day,
            "day_start_equity": self.book.day_start_equity,
        }
        snap["daily_pnl"] = round(self.book.daily_pnl, 2)
        snap["account_id"] = self.account
        return snap

    async def publish_snapshot(self) -> None:
        """For readers in every process: the book (marks moved with quotes) and the
        risk state, stored under the lock so no unstored fill is ever published."""
        async with self.lock:
            await self.store.save_book(self.book)
            snap = self.risk_snapshot()
        await self.store.save_snapshot(orjson.dumps(snap, option=orjson.OPT_NON_STR_KEYS))
        await notify_outbox.watch_state(
            self.store.redis,
            self.account,
            snap,
            len(self.decider.unresolved) + len(self.fills.reconcile_later),
        )
