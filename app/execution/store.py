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
from app.models.alerts import Decision
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
_CLAIM = """
-- KEYS: the alert.  ARGV: our claim (pending:<instance>:<token>), lease, instance key
-- prefix, our instance
local v = redis.call('get', KEYS[1])
if not v then
  redis.call('set', KEYS[1], ARGV[1], 'EX', ARGV[2])
  return 1
end
-- a claim of ours that nothing here is deciding (the caller checked: left by a failed
-- attempt, or a retried command's own), or of an engine whose heartbeat is gone
local holder = string.match(v, '^pending:(%w+):')
if holder and (holder == ARGV[4] or redis.call('exists', ARGV[3] .. holder) == 0) then
  redis.call('set', KEYS[1], ARGV[1], 'EX', ARGV[2])
  return 1
end
return 0
"""
_FENCE = """
-- the account's lease must still be ours: a stalled engine whose lease another process
-- took over writes nothing (KEYS[#KEYS] is the lease, ARGV[#ARGV] our lease value or '')
local lease = ARGV[#ARGV]
if lease ~= '' and redis.call('GET', KEYS[#KEYS]) ~= lease then return -1 end
"""
_SAVE_ORDERS = (
    _FENCE
    + """
-- KEYS: orders stream, open set, recent zset, events channel, one key per order,
--       then (with a decision) the alert and the alerts stream; the lease
-- ARGV: n orders, maxlen, decision json or '', decision ttl, alerts maxlen,
--       our claim or '' (fencing), n trace pairs, trace pairs..., then per order:
--       id, order json, kind (new|terminal|''), created_at; our lease
local n, maxlen, decision, claim = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[6]
local alert = KEYS[5 + n]
if claim ~= '' then  -- fenced: the claim must still be ours
  local current = redis.call('GET', alert)
  if current == decision then return 1 end  -- a retried call whose first run was stored
  if current ~= claim then return 0 end
end
local trace_end = 7 + 2 * tonumber(ARGV[7])
for i = 0, n - 1 do  -- an order id is placed once: a replay never resets a stored order
  if ARGV[trace_end + 4 * i + 3] == 'new' and redis.call('EXISTS', KEYS[5 + i]) == 1 then
    return -2
  end
end
for i = 0, n - 1 do
  local a = trace_end + 4 * i
  local id, raw, kind = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local fields = {'order', raw}
  for t = 8, trace_end do fields[#fields + 1] = ARGV[t] end
  redis.call('SET', KEYS[5 + i], raw)
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*', unpack(fields))
  if kind == 'terminal' then
    redis.call('SREM', KEYS[2], id)
  elseif kind == 'new' then  -- indexes are written once, at creation
    redis.call('SADD', KEYS[2], id)
    redis.call('ZADD', KEYS[3], ARGV[a + 4], id)
  end
  redis.call('PUBLISH', KEYS[4], '{"type":"order","data":' .. raw .. '}')
end
if decision ~= '' then
  redis.call('SET', alert, decision, 'EX', ARGV[4])
  redis.call('XADD', KEYS[6 + n], 'MAXLEN', '~', ARGV[5], '*', 'decision', decision)
  redis.call('PUBLISH', KEYS[7 + n], decision)
end
return 1
"""
)
_SAVE_FILLS = (
    _FENCE
    + """
-- A batch of fills, their orders' transitions and the ledger after them, all or nothing.
-- KEYS: fills seen, fills stream, orders stream, open set, ledger, events channel, then
--       per fill: its order, its symbol's fill index; the lease
-- ARGV: n, maxlen, index cap, ledger json, n trace pairs, trace pairs..., then per fill:
--       fill id, fill json, order id, order json, terminal ('1'|''), earlier SUBMITTED
--       order json or '', fill time; our lease
-- Returns the (0-based) positions of fills booked before (a replay): then nothing is
-- written and the caller books the rest again without them; {} when stored.
local n = tonumber(ARGV[1])
local t = 5 + 2 * tonumber(ARGV[5])
local trace = {}
for i = 6, t do trace[#trace + 1] = ARGV[i] end
local dups, fresh, here = {}, {}, {}
for i = 0, n - 1 do
  local a = t + 7 * i
  local id = ARGV[a + 1]
  if here[id] then
    dups[#dups + 1] = i  -- twice in this batch
  elseif redis.call('SISMEMBER', KEYS[1], id) == 1 then
    -- booked before, or by this very call (retried after its reply was lost)
    if redis.call('GET', KEYS[7 + 2 * i]) ~= ARGV[a + 4] then dups[#dups + 1] = i end
  else
    fresh[#fresh + 1] = i
  end
  here[id] = true
end
if #dups > 0 then return dups end
for _, i in ipairs(fresh) do
  local a = t + 7 * i
  local fill, order = ARGV[a + 2], ARGV[a + 4]
  redis.call('SADD', KEYS[1], ARGV[a + 1])
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'fill', fill, unpack(trace))
  redis.call('ZADD', KEYS[8 + 2 * i], ARGV[a + 7], fill)
  redis.call('ZREMRANGEBYRANK', KEYS[8 + 2 * i], 0, -(tonumber(ARGV[3]) + 1))
  if ARGV[a + 6] ~= '' then
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], '*', 'order', ARGV[a + 6], unpack(trace))
  end
  redis.call('SET', KEYS[7 + 2 * i], order)
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], '*', 'order', order, unpack(trace))
  if ARGV[a + 5] == '1' then redis.call('SREM', KEYS[4], ARGV[a + 3]) end
  redis.call('PUBLISH', KEYS[6], '{"type":"fill","data":' .. fill .. '}')
  redis.call('PUBLISH', KEYS[6], '{"type":"order","data":' .. order .. '}')
end
if #fresh > 0 then redis.call('SET', KEYS[5], ARGV[4]) end
return {}
"""
)
_SET_FENCED = (
    _FENCE
    + """
-- KEYS: the key, the lease.  ARGV: value, our lease
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""
)


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
        self._claim = redis.register_script(_CLAIM)
        self._release = redis.register_script(RELEASE_IF_HELD)
        self._save_orders = self.batch.script(_SAVE_ORDERS)
        self._save_fills = redis.register_script(_SAVE_FILLS)  # (batched by the engine)
        self._set_fenced = redis.register_script(_SET_FENCED)

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
        """The stored book, for readers (the API in any process)."""
        data = await self.load_book_data(account)
        return AccountBook.from_dict(data) if data is not None else None

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
