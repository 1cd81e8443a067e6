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
_RELEASE_CLAIM = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class ExecutionStore:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

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
        return bool(await self.redis.eval(_CLAIM, 1, key, mine, old, str(lease)))

    async def alert_decision(self, alert_id: str) -> Decision | str | None:
        raw = await self.redis.get(Keys.alert(alert_id))
        if raw is None:
            return None
        if isinstance(raw, bytes) and raw.startswith(PENDING):
            return "pending"
        return Decision.model_validate_json(raw)

    async def release_alert(self, alert_id: str, token: str) -> None:
        """Drop our claim (never someone else's) so a retry can decide again."""
        await self.redis.eval(_RELEASE_CLAIM, 1, Keys.alert(alert_id), PENDING + token.encode())

    async def recent_alerts(self, limit: int) -> list[Decision]:
        entries: Any = await self.redis.xrevrange(Keys.ALERTS_STREAM, count=limit)
        return [Decision.model_validate_json(fields[b"decision"]) for _, fields in entries]

    # -- orders ----------------------------------------------------------------
    async def save_order(
        self, order: Order, *, decision: Decision | None = None, ttl: int = 0
    ) -> None:
        """Persist a transition atomically: the order, its stream entry, the open set
        and (for a new order) the alert decision that acknowledges it.
        """
        raw = order.model_dump_json()
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(Keys.order(order.id), raw)
        pipe.xadd(
            Keys.ORDERS_STREAM,
            {"order": raw, **dict[Any, Any](inject_context())},
            maxlen=STREAM_MAXLEN,
            approximate=True,
        )
        if order.status.terminal:
            pipe.srem(Keys.OPEN_ORDERS, order.id)
        elif order.status is OrderStatus.NEW:  # indexes are written once, at creation
            pipe.sadd(Keys.OPEN_ORDERS, order.id)
            pipe.zadd(Keys.RECENT_ORDERS, {order.id: order.created_at})
        if decision is not None:
            self._add_decision(pipe, decision, ttl)
        pipe.publish(Keys.EVENTS_CHANNEL, b'{"type":"order","data":' + raw.encode() + b"}")
        await pipe.execute()

    async def save_decision(self, decision: Decision, ttl: int) -> None:
        pipe = self.redis.pipeline(transaction=True)
        self._add_decision(pipe, decision, ttl)
        await pipe.execute()

    @staticmethod
    def _add_decision(pipe: object, decision: Decision, ttl: int) -> None:
        raw = decision.model_dump_json()
        pipe.set(Keys.alert(decision.alert_id), raw, ex=ttl)  # type: ignore[attr-defined]
        pipe.xadd(Keys.ALERTS_STREAM, {"decision": raw}, maxlen=10_000, approximate=True)  # type: ignore[attr-defined]

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

    async def save_fill(self, fill: Fill, order: Order, ledger: Ledger) -> None:
        """Fill, order transition and ledger in one transaction: all or nothing."""
        order_raw = order.model_dump_json()
        fill_raw = fill.model_dump_json()
        pipe = self.redis.pipeline(transaction=True)
        pipe.sadd(Keys.FILLS_SEEN, fill.id)
        trace: dict[Any, Any] = dict(inject_context())  # the journal continues the webhook's trace
        pipe.xadd(
            Keys.FILLS_STREAM, {"fill": fill_raw, **trace}, maxlen=STREAM_MAXLEN, approximate=True
        )
        pipe.set(Keys.order(order.id), order_raw)
        pipe.xadd(
            Keys.ORDERS_STREAM,
            {"order": order_raw, **trace},
            maxlen=STREAM_MAXLEN,
            approximate=True,
        )
        if order.status.terminal:
            pipe.srem(Keys.OPEN_ORDERS, order.id)
        pipe.set(Keys.ledger(ledger.account), orjson.dumps(ledger.to_dict()))
        pipe.publish(Keys.EVENTS_CHANNEL, b'{"type":"fill","data":' + fill_raw.encode() + b"}")
        pipe.publish(Keys.EVENTS_CHANNEL, b'{"type":"order","data":' + order_raw.encode() + b"}")
        await pipe.execute()

    async def load_ledger(self, account: str) -> Ledger | None:
        raw = await self.redis.get(Keys.ledger(account))
        return Ledger.from_dict(orjson.loads(raw)) if raw else None

    async def save_ledger(self, ledger: Ledger) -> None:
        await self.redis.set(Keys.ledger(ledger.account), orjson.dumps(ledger.to_dict()))

    async def fills(self, limit: int = 1000) -> list[Fill]:
        entries: Any = await self.redis.xrevrange(Keys.FILLS_STREAM, count=limit)
        return [Fill.model_validate_json(fields[b"fill"]) for _, fields in reversed(entries)]

    # -- kill switch -------------------------------------------------------------
    async def save_kill_switch(self, state: str) -> None:
        await self.redis.set(Keys.KILL_SWITCH, state)

    async def load_kill_switch(self) -> str | None:
        raw = await self.redis.get(Keys.KILL_SWITCH)
        return _text(raw) if raw else None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
