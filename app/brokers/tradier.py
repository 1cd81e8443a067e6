"""Tradier behind the ``Broker`` protocol: equity orders, status, fills, positions, balances.

Every call goes through the shared ``TradierClient`` (token, JSON, timeouts, quota,
retries) and every answer through ``app.tradier.normalize`` (one-or-many, ``"null"``).

Order safety:

* our client order id travels as Tradier's ``tag``, so an order whose POST went
  unanswered is found again with ``find_by_tag``;
* an order POST is retried only after a 429 (nothing was accepted). A timeout, a
  dropped connection, a 5xx or an unreadable 2xx leave the order's fate unknown:
  ``BrokerTimeoutError``, never a second POST;
* a 4xx is a clear refusal: ``BrokerError`` with Tradier's own message.

Fills: Tradier reports cumulative execution per order (``exec_quantity``,
``avg_fill_price``, ``last_fill_price``/``last_fill_quantity``). A poller reads the
account's orders while any of ours are open and turns the growth of
``exec_quantity`` into ``Fill`` deltas whose id is ``{broker order id}-{cumulative
quantity}``: the same observation always yields the same id, so replays are idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, SecretStr, model_validator

from app.brokers.base import (
    BrokerError,
    BrokerEvent,
    BrokerOrderState,
    BrokerTimeoutError,
    EventHandler,
)
from app.brokers.credentials import (
    CredentialsError,
    read_secret_env,
    read_secret_file,
    relative,
)
from app.brokers.registry import BrokerContext, BrokerSpec, register
from app.models.market import Quote
from app.models.orders import Fill, Intent, Order, OrderStatus, OrderType, Qty
from app.models.portfolio import AccountState, Position
from app.observability.metrics import BROKER_ERRORS
from app.tradier import normalize as tn
from app.tradier.client import (
    PRODUCTION_URL,
    Params,
    RetryPolicy,
    TradierClient,
    TradierError,
    TradierRetryableError,
)

if TYPE_CHECKING:
    from app.config import Settings

log = logging.getLogger(__name__)

BROKER = "tradier"
TAG_RE = re.compile(r"^[A-Za-z0-9-]{1,255}$")

# Tradier order status -> ours. Anything not listed is UNKNOWN (never acted on by the poller).
STATUSES: dict[str, OrderStatus] = {
    "pending": OrderStatus.SUBMITTED,
    "open": OrderStatus.SUBMITTED,
    "calculated": OrderStatus.SUBMITTED,
    "accepted_for_bidding": OrderStatus.SUBMITTED,
    "held": OrderStatus.SUBMITTED,
    "partially_filled": OrderStatus.PARTIALLY_FILLED,
    "filled": OrderStatus.FILLED,
    "expired": OrderStatus.EXPIRED,
    "canceled": OrderStatus.CANCELED,
    "rejected": OrderStatus.REJECTED,
    "error": OrderStatus.REJECTED,
}


def map_status(raw: Any) -> OrderStatus:
    return STATUSES.get(str(raw or "").strip().lower(), OrderStatus.UNKNOWN)


def order_form(order: Order, *, preview: bool = False) -> dict[str, str | int | float | None]:
    """The form Tradier's ``POST /accounts/{id}/orders`` takes for one equity order."""
    req = order.request
    if not TAG_RE.match(order.id):
        raise BrokerError(
            f"order id {order.id!r} cannot be a Tradier tag (letters, digits, dashes, max 255)"
        )
    kind = req.order_type
    if kind in (OrderType.LIMIT, OrderType.STOP_LIMIT) and req.limit_price is None:
        raise BrokerError(f"{kind.value} order {order.id} has no limit price")
    if kind in (OrderType.STOP, OrderType.STOP_LIMIT) and req.stop_price is None:
        raise BrokerError(f"{kind.value} order {order.id} has no stop price")
    form: dict[str, str | int | float | None] = {
        "class": "equity",
        "symbol": req.symbol,
        "side": req.intent.value,
        "quantity": req.quantity,
        "type": kind.value,
        "duration": req.time_in_force.value,
        "price": req.limit_price if kind in (OrderType.LIMIT, OrderType.STOP_LIMIT) else None,
        "stop": req.stop_price if kind in (OrderType.STOP, OrderType.STOP_LIMIT) else None,
        "tag": order.id,
    }
    if preview:
        form["preview"] = "true"
    return form


def _epoch(value: Any) -> float | None:
    """Epoch seconds of Tradier's ISO ``transaction_date``/``create_date`` (``...Z``)."""
    if not value or not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _intent(raw: Any) -> Intent | None:
    try:
        return Intent(str(raw))
    except ValueError:
        return None


@dataclass(slots=True)
class Tracked:
    """What we know of one of our orders at Tradier, and how much of it we reported."""

    order_id: str  # our id = Tradier tag
    broker_order_id: str
    symbol: str | None = None
    intent: Intent | None = None
    quantity: Qty | None = None
    strategy: str = "default"
    filled: Qty = 0  # cumulative quantity already turned into Fill events
    avg: float | None = None  # Tradier's avg_fill_price at that point
    status: OrderStatus | None = None  # last status reported


class TradierBroker:
    """Tradier brokerage (production or sandbox, by ``base_url``) for one account."""

    name = BROKER
    # the order poller reports a fill again until the engine has booked it (watermark):
    # the engine does not also replay fills for it while running
    redelivers_fills = True
    keeps_book = True

    def __init__(
        self,
        token: str,
        account: str,
        base_url: str = PRODUCTION_URL,
        *,
        timeout: float = 5.0,
        retry: RetryPolicy | None = None,
        poll_interval: float = 1.0,
        pending_ttl: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not account:
            raise BrokerError("a Tradier account id is required")
        self.account = account
        self.client = TradierClient(token, base_url, timeout=timeout, retry=retry)
        self.poll_interval = poll_interval
        self.clock = clock
        self.tracked: dict[str, Tracked] = {}  # broker order id -> state, open orders only
        # our id -> (state, since): placed without an answer, looked for by tag while polling
        self.pending: dict[str, tuple[Tracked, float]] = {}
        self.pending_ttl = pending_ttl
        self.on_event: EventHandler | None = None
        self._poller: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> TradierBroker:
        if settings.tradier_token is None:
            raise BrokerError("TRADEROPS_TRADIER_TOKEN is required for the Tradier broker")
        if not settings.tradier_account_id:
            raise BrokerError("TRADEROPS_TRADIER_ACCOUNT_ID is required for the Tradier broker")
        # One attempt must end before the engine's own deadline, so a slow POST is
        # reported as unknown by us rather than cut off mid-flight.
        kwargs.setdefault(
            "timeout", min(settings.tradier_timeout_seconds, settings.broker_timeout_seconds)
        )
        return cls(
            settings.tradier_token.get_secret_value(),
            settings.tradier_account_id,
            settings.tradier_base_url,
            **kwargs,
        )

    def __repr__(self) -> str:  # never the token
        return f"TradierBroker(account={self.account!r}, base_url={self.client.base_url!r})"

    @property
    def _orders_path(self) -> str:
        return f"/accounts/{self.account}/orders"

    # -- lifecycle ------------------------------------------------------------------
    async def start(self, on_event: EventHandler) -> None:
        self.on_event = on_event
        self._stopping = False
        await self.client.start()
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll_loop(), name="tradier-order-poller")

    async def on_quote(self, quote: Quote) -> None:
        """Tradier fills its own orders: quotes are not needed here."""

    async def close(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._poller), 5.0)
            self._poller = None
        await self.client.close()

    # -- orders ---------------------------------------------------------------------
    async def submit(self, order: Order) -> str:
        """Place the order; Tradier's order id. Never sent twice (see the module doc)."""
        form = order_form(order)
        try:
            body = await self.client.post(self._orders_path, form)
        except TradierError as exc:
            error = place_error(exc, order.id)
            if isinstance(error, BrokerTimeoutError):
                self._unresolved(order)
            raise error from exc
        except asyncio.CancelledError:  # the caller gave up waiting: as unknown as a timeout
            self._unresolved(order)
            raise
        result = tn.first(body, "order")
        errors = tn.collection(body, "errors", "error")
        if errors:  # documented as a 400, but a refusal is a refusal
            raise BrokerError(f"Tradier rejected order {order.id}: {'; '.join(map(str, errors))}")
        if result.get("id") in (None, "", "null"):
            self._unresolved(order)
            raise BrokerTimeoutError(
                f"Tradier answered order {order.id} without an order id; reconcile by tag"
            )
        broker_id = str(result["id"])
        self.tracked.setdefault(broker_id, self._tracked_for(order, broker_id, status=None))
        self._wake.set()
        return broker_id

    async def preview(self, order: Order) -> dict[str, Any]:
        """Tradier's preview of the order (cost, commission, buying power effect); nothing placed."""
        try:
            body = await self.client.post(
                self._orders_path, order_form(order, preview=True), idempotent=True
            )
        except TradierError as exc:
            raise _call_error(exc, f"preview of order {order.id}") from exc
        errors = tn.collection(body, "errors", "error")
        if errors:
            raise BrokerError(f"Tradier rejected order {order.id}: {'; '.join(map(str, errors))}")
        return tn.first(body, "order")

    async def cancel(self, order: Order) -> None:
        """Ask Tradier to cancel; the poller reports the resulting status."""
        broker_id = order.broker_order_id
        if broker_id is None:
            state = await self.find_by_tag(order.id)
            if state is None or state.broker_order_id is None:
                raise BrokerError(f"order {order.id} is not known to Tradier")
            broker_id = state.broker_order_id
        try:
            body = await self.client.request("DELETE", f"{self._orders_path}/{broker_id}")
        except TradierError as exc:
            BROKER_ERRORS.labels(BROKER, "cancel").inc()
            raise _call_error(exc, f"cancel of order {order.id}") from exc
        errors = tn.collection(body, "errors", "error")
        if errors:
            raise BrokerError(
                f"Tradier refused to cancel order {order.id}: {'; '.join(map(str, errors))}"
            )
        self.tracked.setdefault(broker_id, self._tracked_for(order, broker_id, status=order.status))
        self._wake.set()

    async def find_by_tag(self, order_id: str) -> BrokerOrderState | None:
        """Our order at Tradier by its tag; None only when Tradier positively has no such order.

        A failed lookup raises ``BrokerError``: "unknown" must never read as "never placed".
        """
        raw = await self._order_by_tag(order_id)
        if raw is None:
            return None
        broker_id = str(raw.get("id"))
        status = map_status(raw.get("status"))
        avg = tn.num(raw.get("avg_fill_price"))
        return BrokerOrderState(
            order_id=order_id,
            broker_order_id=broker_id,
            status=status,
            filled_quantity=tn.integer(raw.get("exec_quantity")),
            avg_fill_price=avg if avg else None,
        )

    async def fills_for(
        self,
        order_id: str,
        filled_quantity: Qty | None = None,
        avg_fill_price: float | None = None,
    ) -> list[Fill]:
        """Executions not yet reported for one of our orders (reconciliation).

        Tradier keeps only cumulative execution, so what is "new" is measured from a
        baseline: ``filled_quantity``/``avg_fill_price`` when the caller passes what it
        already holds, else what this process already reported, else nothing (the whole
        execution as one fill). Reported fills advance the poller's watermark too.
        """
        raw = await self._order_by_tag(order_id)
        if raw is None:
            return []
        broker_id = str(raw.get("id"))
        async with self._lock:
            tracked = self._adopt(order_id, broker_id) or Tracked(order_id, broker_id)
            if filled_quantity is not None:
                tracked.filled = filled_quantity
                tracked.avg = avg_fill_price
            fill = self.new_fill(tracked, raw)
            if not map_status(raw.get("status")).terminal:
                self.tracked[broker_id] = tracked
                self._wake.set()
            return [fill] if fill is not None else []

    async def orders(self) -> list[dict[str, Any]]:
        """The account's orders as Tradier reports them (tags included)."""
        body = await self._get("orders", self._orders_path, {"includeTags": "true"})
        return [o for o in tn.collection(body, "orders", "order") if isinstance(o, dict)]

    async def order(self, broker_order_id: str) -> dict[str, Any]:
        body = await self._get(
            "order", f"{self._orders_path}/{broker_order_id}", {"includeTags": "true"}
        )
        return tn.first(body, "order")

    # -- account ----------------------------------------------------------------------
    async def positions(self) -> list[Position]:
        body = await self._get("positions", f"/accounts/{self.account}/positions")
        out = []
        for raw in tn.collection(body, "positions", "position"):
            if not isinstance(raw, dict) or not raw.get("symbol"):
                continue
            qty = tn.integer(raw.get("quantity"))
            cost = tn.num(raw.get("cost_basis")) or 0.0
            out.append(
                Position(
                    symbol=str(raw["symbol"]),
                    quantity=qty,
                    avg_price=round(abs(cost / qty), 6) if qty else 0.0,
                )
            )
        return out

    async def balances(self) -> AccountState:
        body = await self._get("balances", f"/accounts/{self.account}/balances")
        raw = tn.first(body, "balances")
        if not raw:
            raise BrokerError(f"Tradier returned no balances for account {self.account}")

        def amount(node: dict[str, Any], key: str) -> float | None:
            return tn.num(node.get(key))

        buying_power = None
        for section, key in (
            ("margin", "stock_buying_power"),
            ("pdt", "stock_buying_power"),
            ("cash", "cash_available"),
        ):
            buying_power = amount(tn.first(raw, section), key)
            if buying_power is not None:
                break
        cash = amount(raw, "total_cash") or 0.0
        long_value = amount(raw, "long_market_value") or 0.0
        short_value = amount(raw, "short_market_value") or 0.0
        return AccountState(
            account=str(raw.get("account_number") or self.account),
            cash=cash,
            equity=amount(raw, "total_equity") or 0.0,
            buying_power=cash if buying_power is None else buying_power,
            realized_pnl_today=amount(raw, "close_pl") or 0.0,
            unrealized_pnl=amount(raw, "open_pl") or 0.0,
            gross_exposure=abs(long_value) + abs(short_value),
        )

    # -- polling --------------------------------------------------------------------
    async def poll(self) -> None:
        """One pass: report status changes and new executions of our open orders."""
        self._expire_pending()
        if not self.tracked and not self.pending:
            return
        listing = await self.orders()
        if self.pending:  # orders whose placement went unanswered: did Tradier take them?
            async with self._lock:
                for found in sorted(listing, key=lambda o: tn.integer(o.get("id"))):
                    tag = str(found.get("tag") or "")
                    if tag in self.pending:
                        log.info(
                            "Tradier order %s found by tag %s after an unanswered place",
                            found.get("id"),
                            tag,
                        )
                        self._adopt(tag, str(found.get("id")))
        by_id = {str(o.get("id")): o for o in listing}
        for broker_id in list(self.tracked):
            raw: dict[str, Any] | None = by_id.get(broker_id)
            if raw is None:  # not in the account listing (an older GTC order?): ask for it
                try:
                    raw = await self.order(broker_id)
                except BrokerError as exc:
                    log.warning("cannot read Tradier order %s: %s", broker_id, exc)
                    continue
                if not raw:
                    continue
            await self.observe(raw)

    async def _poll_loop(self) -> None:
        failures = 0
        while not self._stopping:
            self._wake.clear()
            try:
                await self.poll()
                failures = 0
                delay = self.poll_interval
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                delay = max(self.poll_interval, self.client.retry.backoff(failures))
                log.warning("Tradier order poll failed (%d in a row): %s", failures, exc)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    async def observe(self, raw: dict[str, Any]) -> None:
        """Turn one Tradier order snapshot into events: new executions first, then status.

        If the handler fails, the watermark goes back so the next poll reports again
        (same fill ids, so a consumer that did record them ignores the repeat).
        """
        broker_id = str(raw.get("id"))
        async with self._lock:
            tracked = self.tracked.get(broker_id)
            if tracked is None:
                return
            before = (tracked.filled, tracked.avg, tracked.status)
            events: list[BrokerEvent] = []
            status = map_status(raw.get("status"))
            fill = self.new_fill(tracked, raw)
            if fill is not None:
                done = tracked.quantity is not None and tracked.filled >= tracked.quantity
                fill_status = OrderStatus.FILLED if done else OrderStatus.PARTIALLY_FILLED
                events.append(BrokerEvent(tracked.order_id, fill_status, broker_id, fill=fill))
                tracked.status = fill_status
            if status is OrderStatus.UNKNOWN:
                log.warning("Tradier order %s has unmapped status %r", broker_id, raw.get("status"))
            elif status is OrderStatus.SUBMITTED and tracked.filled > 0:
                pass  # a status lagging its own executions: never step back
            elif status is not tracked.status:
                reason = raw.get("reason_description") or f"Tradier: {raw.get('status')}"
                events.append(BrokerEvent(tracked.order_id, status, broker_id, reason=str(reason)))
                tracked.status = status
            if status.terminal:
                self.tracked.pop(broker_id, None)
            for event in events:
                if not await self._emit(event):
                    tracked.filled, tracked.avg, tracked.status = before
                    self.tracked[broker_id] = tracked
                    return

    def new_fill(self, tracked: Tracked, raw: dict[str, Any]) -> Fill | None:
        """The execution since ``tracked``'s watermark as one Fill (and advance it), or None."""
        if tracked.symbol is None and raw.get("symbol"):
            tracked.symbol = str(raw["symbol"])
        if tracked.intent is None:
            tracked.intent = _intent(raw.get("side"))
        if tracked.quantity is None and tn.num(raw.get("quantity")):
            tracked.quantity = tn.integer(raw.get("quantity"))
        cum: Qty = tn.integer(raw.get("exec_quantity"))
        avg = tn.num(raw.get("avg_fill_price")) or None
        if cum == 0 and map_status(raw.get("status")) is OrderStatus.FILLED and avg:
            cum = tracked.quantity or 0  # a filled order reported without exec_quantity
        prev, prev_avg = tracked.filled, tracked.avg
        delta = cum - prev
        if delta <= 0:
            return None
        if tracked.symbol is None or tracked.intent is None:
            log.warning(
                "Tradier order %s lacks symbol/side; fill deferred", tracked.broker_order_id
            )
            return None
        last_px = tn.num(raw.get("last_fill_price")) or None
        last_qty = tn.integer(raw.get("last_fill_quantity"))
        price: float | None = None
        if prev == 0 and avg:
            price = avg
        elif last_px and last_qty == delta:
            price = last_px
        elif avg and prev_avg:
            derived = (avg * cum - prev_avg * prev) / delta
            price = derived if derived > 0 else avg
        else:
            price = last_px or avg
        if not price:
            log.warning(
                "Tradier order %s executed %d without a price; fill deferred",
                tracked.broker_order_id,
                delta,
            )
            return None
        tracked.filled, tracked.avg = cum, avg
        return Fill(
            id=f"{tracked.broker_order_id}-{cum}",
            order_id=tracked.order_id,
            broker=BROKER,
            account=self.account,
            symbol=tracked.symbol,
            intent=tracked.intent,
            quantity=delta,
            price=round(price, 6),
            time=_epoch(raw.get("transaction_date")) or self.clock(),
            strategy=tracked.strategy,
        )

    # -- internals ------------------------------------------------------------------
    def _unresolved(self, order: Order) -> None:
        """Remember an order whose placement went unanswered; the poller looks for its tag."""
        self.pending[order.id] = (self._tracked_for(order, "", status=None), self.clock())
        self._wake.set()

    def _adopt(self, order_id: str, broker_id: str) -> Tracked | None:
        """The tracked state of one of our orders now known by ``broker_id`` (or None)."""
        tracked = self.tracked.get(broker_id)
        entry = self.pending.pop(order_id, None)
        if tracked is None and entry is not None:
            tracked = entry[0]
            tracked.broker_order_id = broker_id
            self.tracked[broker_id] = tracked
        return tracked

    def _expire_pending(self) -> None:
        now = self.clock()
        for tag, (_, since) in list(self.pending.items()):
            if now - since > self.pending_ttl:
                log.warning(
                    "order %s: no Tradier order with this tag after %.0fs; left to reconciliation",
                    tag,
                    now - since,
                )
                del self.pending[tag]

    def _tracked_for(
        self, order: Order, broker_id: str, *, status: OrderStatus | None = None
    ) -> Tracked:
        req = order.request
        return Tracked(
            order_id=order.id,
            broker_order_id=broker_id,
            symbol=req.symbol,
            intent=req.intent,
            quantity=req.quantity,
            strategy=req.strategy,
            filled=order.filled_quantity,
            avg=order.avg_fill_price,
            status=status,
        )

    async def _order_by_tag(self, order_id: str) -> dict[str, Any] | None:
        """The newest account order tagged ``order_id``; raises ``BrokerError`` on failure."""
        matches = [o for o in await self.orders() if str(o.get("tag") or "") == order_id]
        if not matches:
            return None
        return max(matches, key=lambda o: tn.integer(o.get("id")))

    async def _get(self, op: str, path: str, params: Params | None = None) -> Any:
        try:
            return await self.client.get(path, params)
        except TradierError as exc:
            BROKER_ERRORS.labels(BROKER, op).inc()
            raise _call_error(exc, f"GET {path}") from exc

    async def _emit(self, event: BrokerEvent) -> bool:
        """Hand one event to the engine; False when its handler failed."""
        if self.on_event is None:
            return True
        try:
            await self.on_event(event)
        except Exception:
            log.exception("event handler failed for Tradier order %s", event.broker_order_id)
            return False
        return True


def place_error(exc: TradierError, order_id: str) -> BrokerError:
    """Classify a failed order POST: refused (4xx) or unknown (everything else)."""
    status = exc.status
    if status == 429:  # still throttled after the client's retries: nothing was accepted
        return BrokerError(
            f"Tradier rate limit: order {order_id} not placed ({exc})", retryable=True
        )
    if status is not None and 400 <= status < 500 and status != 408:
        return BrokerError(f"Tradier rejected order {order_id}: {exc}", retryable=False)
    return BrokerTimeoutError(
        f"order {order_id} may or may not be placed ({exc}); reconcile by tag"
    )


def _call_error(exc: TradierError, what: str) -> BrokerError:
    retryable = (
        isinstance(exc, TradierRetryableError)
        or exc.status in (None, 429)
        or (exc.status is not None and exc.status >= 500)
    )
    return BrokerError(f"Tradier {what} failed: {exc}", retryable=retryable)


class TradierCredentials(BaseModel):
    """A Tradier account's block in the accounts file: each secret as a file (0600, e.g.
    a systemd credential) or an environment variable name, never inline."""

    model_config = ConfigDict(extra="forbid")

    token_file: Path | None = None
    token_env: str | None = None
    account_id: str | None = None
    account_id_file: Path | None = None
    base_url: str | None = None
    stream_url: str | None = None

    @model_validator(mode="after")
    def _one_of_each(self) -> TradierCredentials:
        if (self.token_file is None) == (self.token_env is None):
            raise ValueError("give exactly one of token_file, token_env")
        if (self.account_id is None) == (self.account_id_file is None):
            raise ValueError("give exactly one of account_id, account_id_file")
        return self

    def relative_to(self, base: Path) -> None:
        self.token_file = relative(self.token_file, base)
        self.account_id_file = relative(self.account_id_file, base)

    def token(self) -> SecretStr:
        if self.token_file is not None:
            return SecretStr(read_secret_file(self.token_file))
        assert self.token_env is not None
        return SecretStr(read_secret_env(self.token_env))

    def resolved_account_id(self) -> str:
        if self.account_id is not None:
            return self.account_id
        assert self.account_id_file is not None
        return read_secret_file(self.account_id_file)

    def check(self) -> None:
        """Read both secrets now (start-up), naming the field that fails."""
        try:
            self.token()
        except CredentialsError as exc:
            field = "token_file" if self.token_file is not None else "token_env"
            raise CredentialsError(f"{field}: {exc}") from None
        try:
            self.resolved_account_id()
        except CredentialsError as exc:
            raise CredentialsError(f"account_id_file: {exc}") from None


def _build(ctx: BrokerContext) -> TradierBroker:
    """The account's own credentials, or the plain ``TRADEROPS_TRADIER_*`` settings."""
    creds = ctx.credentials
    if not isinstance(creds, TradierCredentials):  # the default account
        return TradierBroker.from_settings(ctx.settings)
    return TradierBroker.from_settings(
        ctx.settings.model_copy(
            update={
                "tradier_token": creds.token(),
                "tradier_account_id": creds.resolved_account_id(),
                "tradier_base_url": creds.base_url or ctx.settings.tradier_base_url,
            }
        )
    )


register(
    BrokerSpec(
        "tradier",
        _build,
        credentials=TradierCredentials,
        description="Tradier brokerage (equities; REST, order polling by tag)",
    )
)
