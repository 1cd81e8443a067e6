"""Deciding an alert for one account: claim it once, plan and size its orders, check
each against risk, store orders and decision in one write (fenced by the lease), answer.

A write whose reply was lost is parked (``unresolved``) until the stored decision says
whether the orders were placed; nothing is ever sent twice or late.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from app.execution.planner import plan_in_book
from app.execution.sizing import SizingError, SizingRule
from app.execution.store import OrderExistsError
from app.models.alerts import Alert, AlertAction, Decision
from app.models.orders import Order, OrderRequest, OrderStatus
from app.observability.metrics import ORDERS
from app.risk.checks import RiskDecision

if TYPE_CHECKING:
    from app.execution.engine import ExecutionEngine

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
class Parked:
    """An accepted alert whose write may or may not have reached Redis (the reply was
    lost): its orders are held, unsent and counted by risk, until the stored decision
    says whether they were placed."""

    decision: Decision
    orders: list[Order]
    token: str
    now: float


def alert_key(alert: Alert) -> str:
    """``alert_id`` if given, else a hash of the whole alert.

    Intake always gives one (an id-less alert is named by its content and arrival, see
    ``app/execution/intake.py``); this fallback serves callers that decide alerts
    directly, where the same content is the same alert."""
    if alert.alert_id:
        return alert.alert_id
    return "h-" + hashlib.sha256(alert.model_dump_json().encode()).hexdigest()[:32]


class AlertDecider:
    """The engine's deciding half (see the module docstring)."""

    def __init__(self, engine: ExecutionEngine) -> None:
        self.engine = engine
        self.inflight: dict[str, asyncio.Future[Decision]] = {}
        self.unresolved: dict[str, Parked] = {}  # alert id -> outcome of its write unknown

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
        inflight = self.inflight.get(alert_id)
        if inflight is not None:  # a copy is being decided in this process: share its answer
            decision = await asyncio.shield(inflight)
            return decision.model_copy(update={"duplicate": True})
        future: asyncio.Future[Decision] = asyncio.get_running_loop().create_future()
        self.inflight[alert_id] = future
        try:
            if alert_id in self.unresolved:  # an earlier copy's write: placed or not?
                try:
                    earlier = await self.resolve(alert_id)
                except (RedisError, OSError) as exc:
                    raise RetryLaterError(_UNKNOWN) from exc
                if earlier is not None:
                    future.set_result(earlier.model_copy(update={"duplicate": True}))
                    return future.result()
            token = "" if fresh else f"{self.engine.instance}:{uuid.uuid4().hex}"
            # (a claim of this engine's that we find is an orphan: copies in flight here
            # were answered above, so ours is taken over; see ExecutionStore.claim_alert)
            if not fresh and not await self.engine.store.claim_alert(alert_id, token):
                found = await self._previous_decision(alert_id, token)
                if found is not None:
                    future.set_result(found)
                    return found
                log.warning("alert %s: its claimant stopped before deciding; deciding it", alert_id)
            try:
                decision = await self._decide(alert, alert_id, token, rule, reply)
            except ClaimLostError:
                log.warning("alert %s: claim lost while deciding; not placed here", alert_id)
                if await self.engine.store.alert_decision(alert_id) is None:  # expired, not taken
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
                        await self.engine.store.release_alert(alert_id, token)
                raise
            future.set_result(decision)
            return decision
        except BaseException as exc:
            if not future.done():
                future.set_exception(exc)
                future.exception()  # mark retrieved: copies re-raise it themselves
            raise
        finally:
            self.inflight.pop(alert_id, None)

    async def _previous_decision(
        self, alert_id: str, token: str, *, take_over: bool = True
    ) -> Decision | None:
        """A repeat: wait (briefly) for the first copy's decision and return it. None when
        the first copy's engine has stopped (heartbeat gone) and the claim is now ours."""
        for i in range(600):
            found = await self.engine.store.alert_decision(alert_id)
            if isinstance(found, Decision):
                return found.model_copy(update={"duplicate": True})
            if found is None:  # first copy failed and released its claim
                break
            if take_over and i % 20 == 0 and await self.engine.store.claim_alert(alert_id, token):
                return None
            await asyncio.sleep(0.005)
        return Decision(
            alert_id=alert_id,
            status="denied",
            check="idempotency",
            reason="in_progress",
            message="an alert with this id is still being processed; retry later",
            time=self.engine.clock(),
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
        now = self.engine.clock()
        base: dict[str, Any] = {
            "alert_id": alert_id,
            "account": self.engine.account,
            "symbol": alert.ticker,
            "action": alert.action.value,
            "strategy": alert.strategy,
            "time": now,
        }
        price = (  # the ticker's price (an option alert's ``price`` is the option's, not it)
            (None if alert.is_option else alert.price)
            or self.engine.last.get(alert.ticker)
            or await self._last_price(alert.ticker)
        )
        denial: Decision | None = None
        orders: list[Order] = []
        options = self.engine.options
        prepared, denial = await options.prepare_or_deny(alert, price, base)
        async with self.engine.lock:
            try:
                requests, refs = (
                    ([], {})
                    if denial is not None
                    else options.requests(prepared, alert, alert_id, price, rule, base)
                )
            except SizingError as exc:
                requests = []
                denial = Decision(
                    **base, status="denied", check="sizing", reason="cannot_size", message=str(exc)
                )
            if denial is None and not requests:
                whose = (
                    f" for strategy {alert.strategy}" if alert.action is AlertAction.EXIT else ""
                )
                message = f"no open position in {alert.ticker}{whose}"
                denial = Decision(**base, status="ignored", reason="no_position", message=message)
            counted: list[OrderRequest] = []
            for request in requests:
                ref = self._reference(request, refs) or price
                verdict = self._check(request, ref)
                if not verdict.allowed:
                    for done in counted:  # an earlier leg of this alert: release it
                        self.engine.book.order_done(done.client_order_id)
                    denial = Decision(
                        **base,
                        status="denied",
                        quantity=request.quantity,
                        check=verdict.check,
                        reason=verdict.reason,
                        message=verdict.message,
                    )
                    break
                self.engine.risk.on_order_submitted(request, now)
                self.engine.book.order_submitted(request, ref)  # working at once
                counted.append(request)
            if denial is None:
                orders = [self._new_order(r, now) for r in requests]
                for order in orders:
                    self.engine.orders[order.id] = order
        if denial is not None:
            if not await self.engine.store.save_alert(
                [], denial, ttl=self.engine.alert_ttl, token=token, channel=reply
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
            saved = await self.engine.store.save_alert(
                orders, decision, ttl=self.engine.alert_ttl, token=token, channel=reply
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
            if not await self.engine.store.save_alert(
                [], denial, ttl=self.engine.alert_ttl, token=token, channel=reply
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
        ORDERS.labels(self.engine.broker.name, OrderStatus.NEW.value).inc(len(orders))
        self.engine.send(orders)
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
                stored = await self.engine.store.decision_is(alert_id, decision)
            except (RedisError, OSError):
                stored = None
            except BaseException:  # cancelled while reading back
                self.unresolved[alert_id] = Parked(decision, orders, token, now)
                raise
        if stored is None:
            self.unresolved[alert_id] = Parked(decision, orders, token, now)
            self.engine.reconciler.count_unresolved()
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
            self.engine.orders.pop(order.id, None)
            self.engine.risk.undo_submitted(order.request, now)
            self.engine.book.order_done(order.id)

    async def resolve(self, alert_id: str) -> Decision | None:
        """A parked alert: its decision if the write had reached Redis (its orders are sent
        now), else None (its orders are dropped and the claim freed for a retry)."""
        parked = self.unresolved.get(alert_id)
        if parked is None:
            return None
        stored = await self.engine.store.decision_is(alert_id, parked.decision)
        if self.unresolved.get(alert_id) is not parked:
            return None  # resolved meanwhile (the watcher and a retry at once)
        del self.unresolved[alert_id]
        if stored:
            ORDERS.labels(self.engine.broker.name, OrderStatus.NEW.value).inc(len(parked.orders))
            held = self.engine.clock() - parked.now
            if held <= MAX_HOLD_SECONDS:
                log.warning("alert %s: its write had been stored; sending its orders", alert_id)
                self.engine.send(parked.orders)
            else:  # too late to trade on: stored as canceled, never sent
                log.error("alert %s: stored, but held %.0fs; canceling its orders", alert_id, held)
                for order in parked.orders:
                    await self.engine.locked_transition(
                        order.id,
                        OrderStatus.CANCELED,
                        f"held {held:.0f}s while Redis was unreachable; not sent",
                    )
            return parked.decision
        self._forget(parked.orders, parked.now)
        with contextlib.suppress(RedisError, OSError):
            await self.engine.store.release_alert(alert_id, parked.token)
        return None

    def requests_for(
        self, alert: Alert, alert_id: str, price: float | None, rule: SizingRule | None = None
    ) -> list[OrderRequest]:
        """The planner, given this account's book and working orders (a seam for tests)."""
        e = self.engine
        rule = rule or e.sizing.rule(alert.strategy)
        return plan_in_book(alert, alert_id, e.account, e.book, e.orders.values(), price, rule)

    @staticmethod
    def _reference(request: OrderRequest, refs: dict[str, float]) -> float | None:
        """The price an order is checked and reserved at: its own, else the planner's."""
        own = request.settle_price if request.settle_price is not None else request.limit_price
        return own or request.stop_price or refs.get(request.client_order_id)

    def _check(self, request: OrderRequest, ref: float | None) -> RiskDecision:
        """Risk's verdict; an expiry booking trades nothing and is not checked."""
        booking = request.settle_price is not None
        return RiskDecision(True) if booking else self.engine.risk.check(request, ref)

    async def _last_price(self, symbol: str) -> float | None:
        return quote.last if (quote := await self.engine.quotes(symbol)) else None

    def _new_order(self, request: OrderRequest, now: float) -> Order:
        return Order(
            id=request.client_order_id,
            broker=self.engine.broker.name,
            account=self.engine.label,
            request=request,
            created_at=now,
            updated_at=now,
        )
