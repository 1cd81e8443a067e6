"""Durable execution state in Redis: every order transition and fill is written
(and appended to its stream) before anyone is told about it.
"""

from __future__ import annotations

from typing import Any

import orjson
from redis.asyncio import Redis

from app.bus import Keys
from app.execution.ledger import Ledger
from app.models.alerts import Decision
from app.models.orders import Fill, Order, OrderStatus
from app.observability.tracing import inject_context

STREAM_MAXLEN = 100_000
ALERTS_MAXLEN = 10_000
FILLS_PER_SYMBOL = 20_000  # the newest fills per symbol kept for chart marks
CLAIM_LEASE_SECONDS = 30
PENDING = b"pending:"
_CLAIM = """
local v = redis.call('get', KEYS[1])
if (not v) or v == ARGV[1] or (ARGV[2] ~= '' and v == ARGV[2]) then
  redis.call('set', KEYS[1], ARGV[1], 'EX', ARGV[3])
  return 1
end
return 0
"""
# One script per persisted transition: one command and one reply instead of a
# MULTI/EXEC of ten (redis-py's per-command cost dominated the webhook path).
# Atomic like MULTI/EXEC (and, like it, no rollback if a command fails midway).
_SAVE_ORDER = """
-- KEYS: order, orders stream, open set, recent zset, events channel[, alert, alerts stream]
-- ARGV: id, order json, kind (new|terminal|''), created_at, maxlen, event,
--       decision json or '', decision ttl, alerts maxlen, trace field/value pairs...
local fields = {'order', ARGV[2]}
for i = 10, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', unpack(fields))
if ARGV[3] == 'terminal' then
  redis.call('SREM', KEYS[3], ARGV[1])
elseif ARGV[3] == 'new' then  -- indexes are written once, at creation
  redis.call('SADD', KEYS[3], ARGV[1])
  redis.call('ZADD', KEYS[4], ARGV[4], ARGV[1])
end
if ARGV[7] ~= '' then
  redis.call('SET', KEYS[6], ARGV[7], 'EX', ARGV[8])
  redis.call('XADD', KEYS[7], 'MAXLEN', '~', ARGV[9], '*', 'decision', ARGV[7])
end
redis.call('PUBLISH', KEYS[5], ARGV[6])
return 1
"""
_SAVE_FILL = """
-- KEYS: fills seen, fills stream, order, orders stream, open set, ledger, events channel,
--       the symbol's fill index
-- ARGV: fill id, fill json, order id, order json, terminal ('1'|''), ledger json, maxlen,
--       fill event, order event, earlier SUBMITTED order json or '', fill time,
--       index cap, trace pairs...
local trace = {}
for i = 13, #ARGV do trace[#trace + 1] = ARGV[i] end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[7], '*', 'fill', ARGV[2], unpack(trace))
redis.call('ZADD', KEYS[8], ARGV[11], ARGV[2])
redis.call('ZREMRANGEBYRANK', KEYS[8], 0, -(tonumber(ARGV[12]) + 1))
if ARGV[10] ~= '' then
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[7], '*', 'order', ARGV[10], unpack(trace))
end
redis.call('SET', KEYS[3], ARGV[4])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[7], '*', 'order', ARGV[4], unpack(trace))
if ARGV[5] == '1' then redis.call('SREM', KEYS[5], ARGV[3]) end
redis.call('SET', KEYS[6], ARGV[6])
redis.call('PUBLISH', KEYS[7], ARGV[8])
redis.call('PUBLISH', KEYS[7], ARGV[9])
return 1
"""
_RELEASE_CLAIM = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class ExecutionStore:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        # EVALSHA, loading the script again if Redis restarted without it
        self._claim = redis.register_script(_CLAIM)
        self._release = redis.register_script(_RELEASE_CLAIM)
        self._save_order = redis.register_script(_SAVE_ORDER)
        self._save_fill = redis.register_script(_SAVE_FILL)

    # -- alerts ----------------------------------------------------------------
    async def claim_alert(
        self,
        alert_id: str,
        token: str,
        lease: int = CLAIM_LEASE_SECONDS,
        previous: str | None = None,
    ) -> bool:
        """True for the first claimant; later copies wait for its decision.

        The claim is a short lease holding the claimant's token: if the claimant dies (or
        Redis fails) before the decision is stored, the alert can be retried once the
        lease ends; the stored decision then replaces it with the long TTL. A redis-py
        retry that finds our own earlier claim still counts as ours, and so does a claim
        ``previous`` that this process abandoned because Redis failed under it.
        """
        key = Keys.alert(alert_id)
        mine = PENDING + token.encode()
        old = PENDING + previous.encode() if previous else b""
        return bool(await self._claim(keys=[key], args=[mine, old, lease]))

    async def alert_decision(self, alert_id: str) -> Decision | str | None:
        raw = await self.redis.get(Keys.alert(alert_id))
        if raw is None:
            return None
        if isinstance(raw, bytes) and raw.startswith(PENDING):
            return "pending"
        return Decision.model_validate_json(raw)

    async def release_alert(self, alert_id: str, token: str) -> None:
        """Drop our claim (never someone else's) so a retry can decide again."""
        await self._release(keys=[Keys.alert(alert_id)], args=[PENDING + token.encode()])

    async def recent_alerts(self, limit: int) -> list[Decision]:
        entries: Any = await self.redis.xrevrange(Keys.ALERTS_STREAM, count=limit)
        return [Decision.model_validate_json(fields[b"decision"]) for _, fields in entries]

    # -- orders ----------------------------------------------------------------
    async def save_order(
        self,
        order: Order,
        *,
        decision: Decision | None = None,
        ttl: int = 0,
    ) -> None:
        """Persist a transition atomically: the order, its stream entry, the open set
        and (for a new order) the alert decision that acknowledges it.
        """
        raw = order.model_dump_json()
        kind = (
            "terminal"
            if order.status.terminal
            else "new"
            if order.status is OrderStatus.NEW
            else ""
        )
        keys = [
            Keys.order(order.id),
            Keys.ORDERS_STREAM,
            Keys.OPEN_ORDERS,
            Keys.RECENT_ORDERS,
            Keys.EVENTS_CHANNEL,
        ]
        decision_raw = ""
        if decision is not None:
            decision_raw = decision.model_dump_json()
            keys += [Keys.alert(decision.alert_id), Keys.ALERTS_STREAM]
        await self._save_order(
            keys=keys,
            args=[
                order.id,
                raw,
                kind,
                repr(order.created_at),
                STREAM_MAXLEN,
                b'{"type":"order","data":' + raw.encode() + b"}",
                decision_raw,
                ttl,
                ALERTS_MAXLEN,
                *_trace_fields(),
            ],
        )

    async def save_decision(self, decision: Decision, ttl: int) -> None:
        pipe = self.redis.pipeline(transaction=True)
        self._add_decision(pipe, decision, ttl)
        await pipe.execute()

    @staticmethod
    def _add_decision(pipe: object, decision: Decision, ttl: int) -> None:
        raw = decision.model_dump_json()
        pipe.set(Keys.alert(decision.alert_id), raw, ex=ttl)  # type: ignore[attr-defined]
        pipe.xadd(Keys.ALERTS_STREAM, {"decision": raw}, maxlen=ALERTS_MAXLEN, approximate=True)  # type: ignore[attr-defined]

    async def get_order(self, order_id: str) -> Order | None:
        raw = await self.redis.get(Keys.order(order_id))
        return Order.model_validate_json(raw) if raw else None

    async def open_orders(self) -> list[Order]:
        ids: Any = await self.redis.smembers(Keys.OPEN_ORDERS)
        orders = [await self.get_order(_text(i)) for i in ids]
        return sorted((o for o in orders if o is not None), key=lambda o: o.created_at)

    async def recent_orders(self, limit: int) -> list[Order]:
        ids: Any = await self.redis.zrevrange(Keys.RECENT_ORDERS, 0, limit - 1)
        if not ids:
            return []
        raws = await self.redis.mget([Keys.order(_text(i)) for i in ids])
        return [Order.model_validate_json(r) for r in raws if r]

    # -- fills and the ledger ----------------------------------------------------
    async def fill_seen(self, fill_id: str) -> bool:
        return bool(await self.redis.sismember(Keys.FILLS_SEEN, fill_id))

    async def save_fill(
        self, fill: Fill, order: Order, ledger: Ledger, *, submitted: Order | None = None
    ) -> None:
        """Fill, order transition and ledger in one atomic script: all or nothing.

        ``submitted`` is the order's SUBMITTED state when the fill arrived before that
        transition was stored (a paper market order fills on submit): it goes into the
        orders stream first, so the stream still holds every transition.
        """
        order_raw = order.model_dump_json()
        fill_raw = fill.model_dump_json()
        await self._save_fill(
            keys=[
                Keys.FILLS_SEEN,
                Keys.FILLS_STREAM,
                Keys.order(order.id),
                Keys.ORDERS_STREAM,
                Keys.OPEN_ORDERS,
                Keys.ledger(ledger.account),
                Keys.EVENTS_CHANNEL,
                Keys.fills_by_symbol(fill.symbol),
            ],
            args=[
                fill.id,
                fill_raw,
                order.id,
                order_raw,
                "1" if order.status.terminal else "",
                orjson.dumps(ledger.to_dict()),
                STREAM_MAXLEN,
                b'{"type":"fill","data":' + fill_raw.encode() + b"}",
                b'{"type":"order","data":' + order_raw.encode() + b"}",
                submitted.model_dump_json() if submitted is not None else "",
                repr(fill.time),
                FILLS_PER_SYMBOL,
                *_trace_fields(),  # the journal continues the webhook's trace
            ],
        )

    async def load_ledger(self, account: str) -> Ledger | None:
        raw = await self.redis.get(Keys.ledger(account))
        return Ledger.from_dict(orjson.loads(raw)) if raw else None

    async def save_ledger(self, ledger: Ledger) -> None:
        await self.redis.set(Keys.ledger(ledger.account), orjson.dumps(ledger.to_dict()))

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
        entries: Any = await self.redis.xrevrange(Keys.FILLS_STREAM, count=limit)
        return [Fill.model_validate_json(fields[b"fill"]) for _, fields in reversed(entries)]

    # -- kill switch -------------------------------------------------------------
    async def save_kill_switch(self, state: str) -> None:
        await self.redis.set(Keys.KILL_SWITCH, state)

    async def load_kill_switch(self) -> str | None:
        raw = await self.redis.get(Keys.KILL_SWITCH)
        return _text(raw) if raw else None


def _trace_fields() -> list[str]:
    """The current trace context as stream-entry field/value pairs (empty when off)."""
    return [item for pair in inject_context().items() for item in pair]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
