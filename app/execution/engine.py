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
import hashlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from redis.exceptions import RedisError

from app.brokers.base import Broker, BrokerError, BrokerEvent, BrokerTimeoutError
from app.execution.accounts import DEFAULT_ACCOUNT
from app.execution.brackets import Brackets
from app.execution.events import EventBatches
from app.execution.planner import plan
from app.execution.reconcile import Reconciler
from app.execution.sizing import SizingConfig, SizingError, SizingRule
from app.execution.store import (
    INSTANCE_TTL_SECONDS,
    ExecutionStore,
    FillWrite,
    OrderExistsError,
)
from app.models.alerts import Alert, AlertAction, Decision
from app.models.market import Quote
from app.models.orders import TRANSITIONS, Fill, Order, OrderRequest, OrderStatus, Qty
from app.notify import outbox as notify_outbox
from app.observability.metrics import (
    BROKER_ERRORS,
    DAILY_LOSS_LIMIT,
    DAILY_PNL,
    EXPOSURE,
    FILLS,
    KILL_SWITCH,
    OPEN_POSITIONS,
    ORDER_LATENCY,
    ORDERS,
)
from app.portfolio.book import FLATTEN_STRATEGY, Checkpoint
from app.risk.engine import RiskEngine
from app.risk.killswitch import KillState

log = logging.getLogger(__name__)

QuoteFn = Callable[[str], Any]
MAX_HOLD_SECONDS = 30.0  # a held alert found stored later than this is canceled, not sent
_UNKNOWN = (
    "state store failed while storing the decision; whether it was placed is being checked: "
    "retry later (a retry answers with the stored decision)"
)


class ClaimLostError(Exception):
    """Our claim on an alert ended before its decision was stored (fenced: nothing written)."""


class RetryLaterError(Exception):
    """The alert cannot be decided now; a retry will be, and nothing is placed twice."""


@dataclass(slots=True)
class _Parked:
    """An accepted alert whose write may or may not have reached Redis (the reply was
    lost): its orders are held, unsent and counted by risk, until the stored decision
    says whether they were placed."""

    decision: Decision
    orders: list[Order]
    token: str
    now: float


@dataclass(slots=True)
class _Booked:
    """A fill booked in memory, not yet stored: what storing it writes, and what undoes it."""

    event: BrokerEvent
    order: Order
    write: FillWrite
    before: tuple[OrderStatus, Qty, float | None, float]
    checkpoint: Checkpoint


def alert_key(alert: Alert) -> str:
    """``alert_id`` if given, else a hash of the whole alert.

    Intake always gives one (an id-less alert is named by its content and arrival, see
    ``app/execution/intake.py``); this fallback serves callers that decide alerts
    directly, where the same content is the same alert."""
    if alert.alert_id:
        return alert.alert_id
    return "h-" + hashlib.sha256(alert.model_dump_json().encode()).hexdigest()[:32]


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
        self.lock = asyncio.Lock()
        self._events = EventBatches(self._handle_events)  # broker events, batched in order
        self.tasks: set[asyncio.Task[None]] = set()
        self._inflight: dict[str, asyncio.Future[Decision]] = {}
        self._watcher: asyncio.Task[None] | None = None
        self.heartbeat_task: asyncio.Task[None] | None = None
        self.unresolved: dict[str, _Parked] = {}  # alert id -> outcome of its write unknown
        self.reconcile_later: set[str] = set()  # orders whose fill could not be stored
        self.sending: set[str] = set()  # orders with a submit scheduled or in flight
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
        self.started = True

    async def _beat(self) -> None:
        """Keep our heartbeat key alive: while it is, no other engine takes our claims."""
        while True:
            await asyncio.sleep(INSTANCE_TTL_SECONDS / 5)
            try:
                await self.store.heartbeat(self.instance)
            except (RedisError, OSError) as exc:  # claims may be taken over; writes are fenced
                log.warning("engine heartbeat failed: %s", exc)

    async def close(self) -> None:
        if not self.started:
            return
        """Let in-flight broker calls finish (bounded), stop watchers, close the broker."""
        if self._watcher is not None:
            self._watcher.cancel()
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=5)
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self._events.close()
        if self.heartbeat_task is not None:
            self.heartbeat_task.cancel()
        with contextlib.suppress(RedisError, OSError):  # gone: claims left are free at once
            await self.store.drop_heartbeat(self.instance)
        await self.broker.close()

    def _day_rolled(self, now: float) -> None:
        """A new trading day started (the book rolled): for a broker that keeps a book, the
        day's loss budget is measured from its equity."""
        if self.broker.keeps_book and self.started:  # the day starts from the broker's equity
            self._spawn(self.reconciler.adopt_at_session_start())

    async def handle_alert(
        self,
        alert: Alert,
        rule: SizingRule | None = None,
        *,
        fresh: bool = False,
        reply: str | None = None,
    ) -> Decision:
        """Decide one alert for this account (``rule``: the route's sizing, if it has one).

        ``fresh``: delivered for the first time from the account's stream to the lease
        holder. Intake appends an alert id once, ever, and only the holder writes (fenced),
        so no earlier decision or rival decider can exist: the claim round trip is skipped.
        A redelivery (after a crash or a failed attempt) takes the full claim path.
        ``reply``: the channel of the intake process that waits for the decision."""
        alert_id = alert_key(alert)
        inflight = self._inflight.get(alert_id)
        if inflight is not None:  # a copy is being decided in this process: share its answer
            decision = await asyncio.shield(inflight)
            return decision.model_copy(update={"duplicate": True})
        future: asyncio.Future[Decision] = asyncio.get_running_loop().create_future()
        self._inflight[alert_id] = future
        try:
            if alert_id in self.unresolved:  # an earlier copy's write: placed or not?
                try:
                    earlier = await self.resolve(alert_id)
                except (RedisError, OSError) as exc:
                    raise RetryLaterError(_UNKNOWN) from exc
                if earlier is not None:
                    future.set_result(earlier.model_copy(update={"duplicate": True}))
                    return future.result()
            token = "" if fresh else f"{self.instance}:{uuid.uuid4().hex}"
            # (a claim of this engine's that we find is an orphan: copies in flight here
            # were answered above, so ours is taken over; see ExecutionStore.claim_alert)
            if not fresh and not await self.store.claim_alert(alert_id, token):
                found = await self._previous_decision(alert_id, token)
                if found is not None:
                    future.set_result(found)
                    return found
                log.warning("alert %s: its claimant stopped before deciding; deciding it", alert_id)
            try:
                decision = await self._decide(alert, alert_id, token, rule, reply)
            except ClaimLostError:
                log.warning("alert %s: claim lost while deciding; not placed here", alert_id)
                if await self.store.alert_decision(alert_id) is None:  # expired, not taken
                    raise RetryLaterError(
                        "the claim on this alert ran out while deciding; nothing was placed, retry"
                    ) from None
                winner = await self._previous_decision(alert_id, token, take_over=False)
                assert winner is not None  # None only when taking over
                decision = winner
            except RetryLaterError:
                raise  # parked: the claim stays until the stored decision is known
            except BaseException:
                # let a retry decide again (if Redis is down too, our retry takes the claim
                # over as this engine's own; another engine's once our heartbeat lapses);
                # a parked alert keeps its claim until its stored decision is known
                if alert_id not in self.unresolved:
                    with contextlib.suppress(RedisError, OSError):
                        await self.store.release_alert(alert_id, token)
                raise
            future.set_result(decision)
            return decision
        except BaseException as exc:
            if not future.done():
                future.set_exception(exc)
                future.exception()  # mark retrieved: copies re-raise it themselves
            raise
        finally:
            self._inflight.pop(alert_id, None)

    async def _previous_decision(
        self, alert_id: str, token: str, *, take_over: bool = True
    ) -> Decision | None:
        """A repeat: wait (briefly) for the first copy's decision and return it. None when
        the first copy's engine has stopped (heartbeat gone) and the claim is now ours."""
        for i in range(600):
            found = await self.store.alert_decision(alert_id)
            if isinstance(found, Decision):
                return found.model_copy(update={"duplicate": True})
            if found is None:  # first copy failed and released its claim
                break
            if take_over and i % 20 == 0 and await self.store.claim_alert(alert_id, token):
                return None
            await asyncio.sleep(0.005)
        return Decision(
            alert_id=alert_id,
            status="denied",
            check="idempotency",
            reason="in_progress",
            message="an alert with this id is still being processed; retry later",
            time=self.clock(),
            duplicate=True,
        )

    async def _decide(
        self,
        alert: Alert,
        alert_id: str,
        token: str,
        rule: SizingRule | None = None,
        reply: str | None = None,
    ) -> Decision:
        """Decide under the engine lock (in memory only), then persist, then answer.

        The lock covers reading the book and registering the new orders, so two alerts
        can never both size against the same position; no network call happens under it.
        """
        now = self.clock()
        base: dict[str, Any] = {
            "alert_id": alert_id,
            "account": self.account,
            "symbol": alert.ticker,
            "action": alert.action.value,
            "strategy": alert.strategy,
            "time": now,
        }
        price = alert.price or self.last.get(alert.ticker) or await self._last_price(alert.ticker)
        denial: Decision | None = None
        orders: list[Order] = []
        async with self.lock:
            try:
                requests = self._requests_for(alert, alert_id, price, rule)
            except SizingError as exc:
                requests = []
                denial = Decision(
                    **base, status="denied", check="sizing", reason="cannot_size", message=str(exc)
                )
            if denial is None and not requests:
                denial = Decision(
                    **base,
                    status="ignored",
                    reason="no_position",
                    message=f"no open position in {alert.ticker}"
                    + (
                        f" for strategy {alert.strategy}"
                        if alert.action is AlertAction.EXIT
                        else ""
                    ),
                )
            counted: list[OrderRequest] = []
            for request in requests:
                verdict = self.risk.check(
                    request, request.limit_price or request.stop_price or price
                )
                if not verdict.allowed:
                    for done in counted:  # an earlier leg of this alert: release it
                        self.book.order_done(done.client_order_id)
                    denial = Decision(
                        **base,
                        status="denied",
                        quantity=request.quantity,
                        check=verdict.check,
                        reason=verdict.reason,
                        message=verdict.message,
                    )
                    break
                self.risk.on_order_submitted(request, now)
                self.book.order_submitted(request, price)  # counts as working at once
                counted.append(request)
            if denial is None:
                orders = [self._new_order(r, now) for r in requests]
                for order in orders:
                    self.orders[order.id] = order
        if denial is not None:
            if not await self.store.save_alert(
                [], denial, ttl=self.alert_ttl, token=token, channel=reply
            ):
                raise ClaimLostError(alert_id)
            return denial
        decision = Decision(
            **base,
            status="accepted",
            order_id=orders[0].id,
            quantity=sum(o.request.quantity for o in orders),
            message="accepted"
            if len(orders) == 1
            else f"accepted as {len(orders)} orders: {', '.join(o.id for o in orders)}",
        )
        try:
            saved = await self.store.save_alert(
                orders, decision, ttl=self.alert_ttl, token=token, channel=reply
            )
        except OrderExistsError:
            self._forget(orders, now)
            denial = Decision(
                **base,
                status="denied",
                check="idempotency",
                reason="order_exists",
                message="this alert's order is stored already (an alert replayed after its "
                "idempotency window); the stored order is unchanged, nothing placed",
            )
            if not await self.store.save_alert(
                [], denial, ttl=self.alert_ttl, token=token, channel=reply
            ):
                raise ClaimLostError(alert_id) from None
            return denial
        except BaseException as exc:
            if not isinstance(exc, (RedisError, OSError, asyncio.CancelledError)):
                self._forget(orders, now)  # failed before anything was sent
                raise
            saved = await self._stored_after_all(exc, alert_id, decision, orders, token, now)
        if not saved:
            self._forget(orders, now)
            raise ClaimLostError(alert_id)
        ORDERS.labels(self.broker.name, OrderStatus.NEW.value).inc(len(orders))
        self.send(orders)
        return decision

    async def _stored_after_all(
        self,
        exc: BaseException,
        alert_id: str,
        decision: Decision,
        orders: list[Order],
        token: str,
        now: float,
    ) -> bool:
        """The alert's write failed with ``exc``, maybe after Redis had stored it (a lost
        reply). True if it was stored; not stored: orders forgotten, ``exc`` re-raised;
        unknown (Redis unreadable, or we are cancelled): orders held unsent until the
        watcher or a retry can read the stored decision (RetryLaterError)."""
        stored: bool | None = None
        if not isinstance(exc, asyncio.CancelledError):
            try:
                stored = await self.store.decision_is(alert_id, decision)
            except (RedisError, OSError):
                stored = None
            except BaseException:  # cancelled while reading back
                self.unresolved[alert_id] = _Parked(decision, orders, token, now)
                raise
        if stored is None:
            self.unresolved[alert_id] = _Parked(decision, orders, token, now)
            self.reconciler.count_unresolved()
            if isinstance(exc, asyncio.CancelledError):
                raise exc
            log.error(
                "alert %s: write outcome unknown (%s); held until Redis answers", alert_id, exc
            )
            raise RetryLaterError(_UNKNOWN) from exc
        if not stored:
            self._forget(orders, now)
            raise exc
        return True

    def _forget(self, orders: list[Order], now: float) -> None:
        """Orders that were never stored: as if they had not been decided."""
        for order in orders:
            self.orders.pop(order.id, None)
            self.risk.undo_submitted(order.request, now)
            self.book.order_done(order.id)

    async def resolve(self, alert_id: str) -> Decision | None:
        """A parked alert: its decision if the write had reached Redis (its orders are sent
        now), else None (its orders are dropped and the claim freed for a retry)."""
        parked = self.unresolved.get(alert_id)
        if parked is None:
            return None
        stored = await self.store.decision_is(alert_id, parked.decision)
        if self.unresolved.get(alert_id) is not parked:
            return None  # resolved meanwhile (the watcher and a retry at once)
        del self.unresolved[alert_id]
        if stored:
            ORDERS.labels(self.broker.name, OrderStatus.NEW.value).inc(len(parked.orders))
            held = self.clock() - parked.now
            if held <= MAX_HOLD_SECONDS:
                log.warning("alert %s: its write had been stored; sending its orders", alert_id)
                self.send(parked.orders)
            else:  # too late to trade on: stored as canceled, never sent
                log.error("alert %s: stored, but held %.0fs; canceling its orders", alert_id, held)
                for order in parked.orders:
                    await self.locked_transition(
                        order.id,
                        OrderStatus.CANCELED,
                        f"held {held:.0f}s while Redis was unreachable; not sent",
                    )
            return parked.decision
        self._forget(parked.orders, parked.now)
        with contextlib.suppress(RedisError, OSError):
            await self.store.release_alert(alert_id, parked.token)
        return None

    def _requests_for(
        self, alert: Alert, alert_id: str, price: float | None, rule: SizingRule | None = None
    ) -> list[OrderRequest]:
        """The planner, given this account's position and working orders in the symbol."""
        pending: Qty = 0
        strategy_pending: Qty = 0
        for o in self.orders.values():
            if o.request.symbol == alert.ticker:
                signed = o.remaining * o.request.side.sign
                pending += signed
                if o.request.strategy == alert.strategy:
                    strategy_pending += signed
        return plan(
            alert,
            alert_id,
            account=self.account,
            position=self.book.position(alert.ticker),
            pending=pending,
            price=price,
            equity=self.book.equity,
            rule=rule or self.sizing.rule(alert.strategy),
            strategy_held=self.book.strategy_position(alert.strategy, alert.ticker)
            + strategy_pending,
        )

    async def _last_price(self, symbol: str) -> float | None:
        quote: Quote | None = await self.quotes(symbol)
        return quote.last if quote else None

    def _new_order(self, request: OrderRequest, now: float) -> Order:
        return Order(
            id=request.client_order_id,
            broker=self.broker.name,
            account=self.label,
            request=request,
            created_at=now,
            updated_at=now,
        )

    # -- broker side (background) ------------------------------------------------
    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def send(self, orders: list[Order]) -> None:
        """Submit in the background; the watcher leaves these alone meanwhile."""
        self.sending.update(o.id for o in orders)
        self._spawn(self._submit_chain(orders))

    async def _submit_chain(self, orders: list[Order]) -> None:
        """Legs in sequence: a reversal covers first, then opens."""
        try:
            await self._submit_legs(orders)
        finally:
            self.sending.difference_update(o.id for o in orders)

    async def _submit_legs(self, orders: list[Order]) -> None:
        for order in orders:
            await self.submit(order)
            if len(orders) > 1:
                for _ in range(200):
                    current = self.orders.get(order.id)
                    if current is None or current.status.terminal:
                        break
                    await asyncio.sleep(0.01)

    async def submit(self, order: Order) -> None:
        start = time.perf_counter()
        try:
            async with asyncio.timeout(self.broker_timeout):  # (no wait_for task per order)
                broker_id = await self.broker.submit(order)
        except (TimeoutError, BrokerTimeoutError) as exc:
            BROKER_ERRORS.labels(self.broker.name, "submit").inc()
            self.risk.on_broker_result(False)
            await self.locked_transition(
                order.id,
                OrderStatus.UNKNOWN,
                f"broker timeout: {exc or 'no answer'}; reconcile by tag",
            )
            return
        except RedisError as exc:
            # our own state store failed (the paper broker keeps its book in Redis): the
            # order stays NEW and the watcher sends it once the broker can take it.
            # (After the timeout clause: TimeoutError is an OSError and means "unknown".)
            log.warning("could not send order %s yet: %s", order.id, exc)
            return
        except BrokerError as exc:
            BROKER_ERRORS.labels(self.broker.name, "submit").inc()
            self.risk.on_broker_result(False)
            await self.locked_transition(order.id, OrderStatus.REJECTED, str(exc))
            return
        ORDER_LATENCY.labels(self.broker.name).observe(time.perf_counter() - start)
        self.risk.on_broker_result(True)
        async with self.lock:
            current = self.orders.get(order.id)
            if current is not None and current.broker_order_id is None:
                current.broker_order_id = broker_id
                if current.status is OrderStatus.NEW:
                    await self.transition(current, OrderStatus.SUBMITTED)

    async def locked_transition(
        self, order_id: str, status: OrderStatus, reason: str | None = None
    ) -> None:
        async with self.lock:
            order = self.orders.get(order_id)
            if order is not None:
                await self.transition(order, status, reason)

    async def transition(
        self, order: Order, status: OrderStatus, reason: str | None = None
    ) -> None:
        if status == order.status and status is not OrderStatus.PARTIALLY_FILLED:
            return
        if status not in TRANSITIONS[order.status]:
            log.warning(
                "ignoring %s -> %s for order %s", order.status.value, status.value, order.id
            )
            return
        order.status = status
        order.updated_at = self.clock()
        if reason:
            order.reason = reason
        await self.store.save_order(order)
        ORDERS.labels(self.broker.name, status.value).inc()
        if status.terminal:
            self.orders.pop(order.id, None)
            self.book.order_done(order.id)

    async def on_broker_event(self, event: BrokerEvent) -> None:
        """Queued and handled in arrival order; fills that arrive together are booked
        together (see ``_handle_events``). Returns once this event is handled."""
        await self._events.put(event)

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
                async with self.lock:
                    await self._status_event(event)
            except Exception as exc:  # (its caller gets it, as with a lone event)
                outcomes[i] = exc
        return outcomes

    async def _event_order(self, event: BrokerEvent) -> Order | None:
        order = self.orders.get(event.order_id) or await self.store.get_order(event.order_id)
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
            await self.transition(order, event.status, event.reason)

    async def _book_fills(self, events: list[BrokerEvent]) -> Exception | None:
        """Book fills in memory, store them (one script), and undo them if the store says
        some were booked before (a replay or redelivery: the script is the one dedupe; the
        others are booked again without them) or the write failed.

        Only this task books fills, so they are stored in the order booked. The engine
        lock covers the booking and the undoing, not the write: alerts are decided
        meanwhile, on a book that already holds these fills (they did happen at the
        broker; only our record of them is in flight)."""
        while events:
            async with self.lock:
                booked: list[_Booked] = []
                for event in events:
                    order = await self._event_order(event)
                    if order is not None and event.fill is not None:
                        booked.append(self._book_fill(order, event.fill, event))
                if not booked:
                    return None
                # (the book is serialised here, under the lock; written when awaited)
                saving = self.store.save_fills([b.write for b in booked], self.book)
            try:
                replays = await saving
            except Exception as exc:
                # stored or not (the reply may be what was lost): memory must not run ahead
                # of Redis (the next fill would store these in its book, and a restart
                # would replay them). Undo them; the watcher reloads the orders and book
                # from Redis, then reconciles whatever is still missing.
                async with self.lock:
                    for b in reversed(booked):  # newest first: each checkpoint restored exactly
                        self._undo_fill(b)
                    self.reconcile_later.update(b.order.id for b in booked)
                    self.reconciler.count_unresolved()
                return exc
            async with self.lock:
                if replays:
                    for b in reversed(booked):
                        self._undo_fill(b)
                    skip = set(replays)  # (a fill twice in the batch: its later copies)
                    events = [b.event for i, b in enumerate(booked) if i not in skip]
                    continue
                for b in booked:
                    self._fill_booked(b)
                self.risk.marked(self.clock())  # loss velocity, the daily loss latch
                self.update_gauges()
            return None
        return None

    def _book_fill(self, order: Order, fill: Fill, event: BrokerEvent) -> _Booked:
        """The fill applied to the order and the book, in memory only."""
        if fill.account != self.label:  # the journal keeps each account apart
            fill = fill.model_copy(update={"account": self.label})
        before = (order.status, order.filled_quantity, order.avg_fill_price, order.updated_at)
        checkpoint = self.book.checkpoint(fill.symbol, order.id)
        now = self.clock()
        submitted = ""
        if order.status is OrderStatus.NEW:  # filled on submit: store SUBMITTED with the fill
            order.status = OrderStatus.SUBMITTED
            submitted = order.model_copy(update={"updated_at": now}).model_dump_json()
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
        self.book.apply_fill(fill, order.id)
        write = FillWrite(fill, order.id, order.model_dump_json(), order.status.terminal, submitted)
        return _Booked(event, order, write, before, checkpoint)

    def _fill_booked(self, b: _Booked) -> None:
        """What follows a stored fill: metrics, the order's end, brackets (the book has it
        already: ``_book_fill``)."""
        order = b.order
        if b.write.submitted_raw:
            ORDERS.labels(self.broker.name, OrderStatus.SUBMITTED.value).inc()
        FILLS.labels(self.broker.name).inc()
        status = OrderStatus.FILLED if b.write.terminal else OrderStatus.PARTIALLY_FILLED
        ORDERS.labels(self.broker.name, status.value).inc()
        if b.write.terminal:
            self.orders.pop(order.id, None)
            self.book.order_done(order.id)
            self.brackets.add(order)

    def _undo_fill(self, b: _Booked) -> None:
        b.order.status, b.order.filled_quantity, b.order.avg_fill_price, b.order.updated_at = (
            b.before
        )
        self.book.restore(b.checkpoint)

    # -- quotes, brackets --------------------------------------------------------
    async def on_quote(self, quote: Quote) -> None:
        self.last[quote.symbol] = quote.last
        self.book.mark(quote.symbol, quote.last, quote.time)
        self.risk.on_quote(quote.symbol, quote.last, quote.time)
        await self.broker.on_quote(quote)
        for alert in self.brackets.triggered(quote.symbol, quote.last):
            self._spawn(self._bracket_exit(alert))

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
    async def cancel(self, order_id: str) -> Order:
        order = self.orders.get(order_id)
        if order is None:
            stored = await self.store.get_order(order_id)
            if stored is None:
                raise KeyError(order_id)
            raise ValueError(f"order {order_id} is {stored.status.value} and cannot be canceled")
        if order.status is OrderStatus.NEW:
            await self.locked_transition(
                order_id, OrderStatus.CANCELED, "canceled before reaching the broker"
            )
        else:
            await self.broker.cancel(order)
        return (await self.store.get_order(order_id)) or order

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
            self.store.redis, self.account, snap, len(self.unresolved) + len(self.reconcile_later)
        )
