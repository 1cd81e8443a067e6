"""Durable execution state in Redis: every order transition and fill is written
(and appended to its stream) before anyone is told about it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis

from app.autopipeline import AutoPipeline
from app.bus import RELEASE_IF_HELD, Keys
from app.execution import scripts
from app.models.alerts import Decision
from app.models.instruments import multiplier_of
from app.models.orders import Fill, Order, OrderStatus
from app.observability.tracing import inject_context
from app.portfolio.book import AccountBook

STREAM_MAXLEN = 100_000
ALERTS_MAXLEN = 10_000
FILLS_PER_SYMBOL = 20_000  # the newest fills per symbol kept for chart marks
CLAIM_LEASE_SECONDS = 30
PENDING = b"pending:"
INSTANCE_TTL_SECONDS = 5  # an engine that has not beaten for this long is gone
SNAPSHOT_TTL_SECONDS = 30


@dataclass(frozen=True, slots=True)
class FillWrite:
    """A fill as booked, with its order's state right after it (JSON, taken at booking:
    two fills of one order in a batch store both states, in order)."""

    fill: Fill
    order_id: str
    order_raw: str
    terminal: bool
    submitted_raw: str = ""  # the order's SUBMITTED state, when the fill came first


class FencedError(Exception):
    """The account's lease is no longer this engine's: another process owns the account
    now, and this write was refused (nothing written)."""


class OrderExistsError(Exception):
    """An alert's order id is stored already (an alert replayed after its idempotency
    window): the stored order is left as it is, nothing placed."""


class ExecutionStore:
    """One account's durable state. ``lease`` is the engine's lease value on the account
    (``None``: unfenced, for tools and tests): every write checks it in the same script."""

    def __init__(self, redis: Redis, account: str = "default", lease: str | None = None) -> None:
        self.redis = redis
        self.account = account
        self.keys = Keys.account(account)
        self.lease = lease
        # EVALSHA, loading the script again if Redis restarted without it; the writes of
        # a batch of alerts (and of their fills) go out together
        self.batch = AutoPipeline(redis)
        self._claim = redis.register_script(scripts.CLAIM)
        self._release = redis.register_script(RELEASE_IF_HELD)
        self._save_orders = self.batch.script(scripts.SAVE_ORDERS)
        self._save_fills = redis.register_script(scripts.SAVE_FILLS)  # (batched by the engine)
        self._set_fenced = redis.register_script(scripts.SET_FENCED)

    def _fenced(self, result: Any) -> Any:
        if result == -1:
            raise FencedError(f"account {self.account}: lease lost; write refused")
        return result

    # -- alerts ----------------------------------------------------------------
    async def claim_alert(
        self, alert_id: str, token: str, lease: int = CLAIM_LEASE_SECONDS
    ) -> bool:
        """True for the first claimant; later copies wait for its decision.

        ``token`` is ``<instance>:<random>``, the instance being the claiming engine. The
        claim is a short lease holding it, and it is claimable again when its engine's
        heartbeat is gone (it died deciding: ``heartbeat``), when it is this engine's own
        (the caller only claims what it is not deciding already: a claim left by an
        attempt that failed with Redis, or a retried command finding its own), or when the
        lease ends. The stored decision replaces it with the long TTL, and is written only
        while the claim is still the writer's (``save_alert``).
        """
        instance = token.split(":", 1)[0]
        return bool(
            await self._claim(
                keys=[self.keys.alert(alert_id)],
                args=[PENDING + token.encode(), lease, Keys.instance(""), instance],
            )
        )

    async def heartbeat(self, instance: str, ttl: int = INSTANCE_TTL_SECONDS) -> None:
        """This engine is alive: its claims are not to be taken over."""
        await self.redis.set(Keys.instance(instance), b"1", ex=ttl)

    async def drop_heartbeat(self, instance: str) -> None:
        await self.redis.delete(Keys.instance(instance))

    async def alert_decision(self, alert_id: str) -> Decision | str | None:
        raw = await self.redis.get(self.keys.alert(alert_id))
        if raw is None:
            return None
        if isinstance(raw, bytes) and raw.startswith(PENDING):
            return "pending"
        return Decision.model_validate_json(raw)

    async def decision_is(self, alert_id: str, decision: Decision) -> bool:
        """Whether ``decision`` is the one stored for the alert (after a write whose
        outcome is unknown: the reply was lost)."""
        return bool(
            await self.redis.get(self.keys.alert(alert_id)) == decision.model_dump_json().encode()
        )

    async def release_alert(self, alert_id: str, token: str) -> None:
        """Drop our claim (never someone else's) so a retry can decide again."""
        await self._release(keys=[self.keys.alert(alert_id)], args=[PENDING + token.encode()])

    async def recent_alerts(self, limit: int) -> list[Decision]:
        """This account's newest decisions (the stream holds every account's)."""
        entries: Any = await self.redis.xrevrange(Keys.ALERTS_STREAM, count=limit * 4)
        out = []
        for _, fields in entries:
            decision = Decision.model_validate_json(fields[b"decision"])
            if decision.account in (self.account, None):  # (None: stored before accounts)
                out.append(decision)
                if len(out) >= limit:
                    break
        return out

    # -- orders ----------------------------------------------------------------
    async def save_order(self, order: Order) -> None:
        """Persist a transition atomically: the order, its stream entry, the open set."""
        await self._write([order], None, 0, None)

    async def save_alert(
        self,
        orders: list[Order],
        decision: Decision,
        *,
        ttl: int,
        token: str,
        channel: str | None = None,
    ) -> bool:
        """An alert's new orders (none for a denial) and its decision, atomically, fenced
        by the claim: False, and nothing written, when the claim ``token`` is no longer
        ours (our lease ran out, or our heartbeat stopped and another engine took over).
        ``OrderExistsError`` when an order id is stored already (nothing written). The
        decision is published on ``channel`` (the waiting intake's), else the shared one."""
        claim = PENDING + token.encode() if token else None
        return await self._write(orders, decision, ttl, claim, channel)

    async def _write(
        self,
        orders: list[Order],
        decision: Decision | None,
        ttl: int,
        claim: bytes | None,
        channel: str | None = None,
    ) -> bool:
        k = self.keys
        keys = [Keys.ORDERS_STREAM, k.open_orders, k.recent_orders, Keys.EVENTS_CHANNEL]
        keys += [Keys.order(o.id) for o in orders]
        if decision is not None:
            keys += [k.alert(decision.alert_id), Keys.ALERTS_STREAM]
            keys.append(channel or Keys.DECISIONS_CHANNEL)
        keys.append(k.lease)
        trace = _trace_fields()
        args: list[Any] = [
            len(orders),
            STREAM_MAXLEN,
            decision.model_dump_json() if decision is not None else "",
            ttl,
            ALERTS_MAXLEN,
            claim or "",
            len(trace) // 2,
            *trace,
        ]
        for order in orders:
            status = order.status
            kind = "terminal" if status.terminal else "new" if status is OrderStatus.NEW else ""
            args += [order.id, order.model_dump_json(), kind, repr(order.created_at)]
        args.append(self.lease or "")
        result = self._fenced(await self._save_orders(keys=keys, args=args))
        if result == -2:
            raise OrderExistsError(", ".join(o.id for o in orders))
        return bool(result)

    async def get_order(self, order_id: str) -> Order | None:
        raw = await self.redis.get(Keys.order(order_id))
        return Order.model_validate_json(raw) if raw else None

    async def open_orders(self) -> list[Order]:
        ids: Any = await self.redis.smembers(self.keys.open_orders)
        orders = [await self.get_order(_text(i)) for i in ids]
        return sorted((o for o in orders if o is not None), key=lambda o: o.created_at)

    async def recent_orders(self, limit: int) -> list[Order]:
        ids: Any = await self.redis.zrevrange(self.keys.recent_orders, 0, limit - 1)
        if not ids:
            return []
        raws = await self.redis.mget([Keys.order(_text(i)) for i in ids])
        return [Order.model_validate_json(r) for r in raws if r]

    # -- fills and the book ------------------------------------------------------
    def save_fills(self, fills: Sequence[FillWrite], book: AccountBook) -> Awaitable[list[int]]:
        """Fills (in booking order), their orders' transitions and ``book`` (the book
        after all of them) in one atomic script: all or nothing. Returns the positions of
        fills booked before (a replay or redelivery): then nothing is written, and the
        caller undoes its booking and books the others again without them.

        What is written (the ledger too) is taken at the call; the write happens when the
        result is awaited (the engine books under its lock and waits outside it)."""
        k = self.keys
        keys: list[Any] = [
            k.fills_seen,
            Keys.FILLS_STREAM,
            Keys.ORDERS_STREAM,
            k.open_orders,
            k.ledger,
            Keys.EVENTS_CHANNEL,
        ]
        trace = _trace_fields()  # the journal continues the webhook's trace
        args: list[Any] = [
            len(fills),
            STREAM_MAXLEN,
            FILLS_PER_SYMBOL,
            orjson.dumps(book.to_dict()),
            len(trace) // 2,
            *trace,
        ]
        for w in fills:
            keys += [Keys.order(w.order_id), Keys.fills_by_symbol(w.fill.symbol)]
            args += [
                w.fill.id,
                w.fill.model_dump_json(),
                w.order_id,
                w.order_raw,
                "1" if w.terminal else "",
                w.submitted_raw,
                repr(w.fill.time),
            ]
        keys.append(k.lease)
        args.append(self.lease or "")
        return self._send_fills(keys, args)

    async def _send_fills(self, keys: list[Any], args: list[Any]) -> list[int]:
        result = self._fenced(await self._save_fills(keys=keys, args=args))
        return [int(i) for i in result]

    async def load_book_data(self, account: str | None = None) -> dict[str, Any] | None:
        """The stored book's figures (``AccountBook.load`` takes them)."""
        raw = await self.redis.get(Keys.ledger(account or self.account))
        return orjson.loads(raw) if raw else None

    async def load_book(self, account: str | None = None) -> AccountBook | None:
        """The stored book, for readers (the API in any process), read the way the engine
        keeps it: with each instrument's multiplier (an option's 100, a future's point
        value), so market value and P&L read from it are in dollars."""
        data = await self.load_book_data(account)
        if data is None:
            return None
        return AccountBook.from_dict(data, multiplier_of=multiplier_of)

    async def save_book(self, book: AccountBook) -> None:
        await self._set(self.keys.ledger, orjson.dumps(book.to_dict()))

    async def _set(self, key: str, value: bytes | str) -> None:
        self._fenced(
            await self._set_fenced(keys=[key, self.keys.lease], args=[value, self.lease or ""])
        )

    async def fills_between(self, symbol: str, start: float, end: float) -> list[Fill]:
        """``symbol``'s fills with ``start <= time < end``, oldest first (the index)."""
        raws: Any = await self.redis.zrangebyscore(Keys.fills_by_symbol(symbol), start, f"({end}")
        return [Fill.model_validate_json(r) for r in raws]

    async def index_fills(self, chunk: int = 1000) -> int:
        """Build the per-symbol fill index from the fills stream, once (fills booked before
        the index existed); later fills are indexed as they are saved. Idempotent."""
        if await self.redis.exists(Keys.FILLS_INDEXED):
            return 0
        count, cursor = 0, "-"
        while True:
            entries: Any = await self.redis.xrange(Keys.FILLS_STREAM, cursor, "+", count=chunk)
            if cursor != "-":
                entries = entries[1:]  # the range is inclusive of the last id read
            if not entries:
                break
            pipe = self.redis.pipeline(transaction=False)
            for _, fields in entries:
                fill = Fill.model_validate_json(fields[b"fill"])
                pipe.zadd(Keys.fills_by_symbol(fill.symbol), {fields[b"fill"]: fill.time})
            await pipe.execute()
            count += len(entries)
            cursor = _text(entries[-1][0])
        await self.redis.set(Keys.FILLS_INDEXED, str(count))
        return count

    async def fills(self, limit: int = 1000) -> list[Fill]:
        """The newest fills (every account's), oldest first."""
        entries: Any = await self.redis.xrevrange(Keys.FILLS_STREAM, count=limit)
        return [Fill.model_validate_json(fields[b"fill"]) for _, fields in reversed(entries)]

    # -- kill switch and the risk snapshot ----------------------------------------
    async def save_kill_switch(self, state: str) -> None:
        await self._set(self.keys.kill_switch, state)

    async def load_kill_switch(self) -> str | None:
        raw = await self.redis.get(self.keys.kill_switch)
        return _text(raw) if raw else None

    async def save_snapshot(self, snapshot: bytes) -> None:
        """The lease holder's risk state, for readers in other processes (short TTL: a
        stale snapshot from a dead holder disappears)."""
        await self.redis.set(self.keys.snapshot, snapshot, ex=SNAPSHOT_TTL_SECONDS)

    async def load_snapshot(self) -> dict[str, Any] | None:
        raw = await self.redis.get(self.keys.snapshot)
        return orjson.loads(raw) if raw else None


def _trace_fields() -> list[str]:
    """The current trace context as stream-entry field/value pairs (empty when off)."""
    return [item for pair in inject_context().items() for item in pair]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
