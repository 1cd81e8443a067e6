"""Redis: the one connection pool and every key, stream and channel name we use.

Nothing else in trader-ops spells a Redis key; grep here to see all state.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson
from redis.asyncio import BlockingConnectionPool, Redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from app.models.market import Quote

PREFIX = "traderops"


class Keys:
    """Key, stream and channel names (one namespace, ``traderops:``)."""

    # market data
    QUOTES_CHANNEL = f"{PREFIX}:ch:quotes"
    QUOTE_PUBLISHER_LEASE = f"{PREFIX}:lease:quote-publisher"

    @staticmethod
    def quote(symbol: str) -> str:
        return f"{PREFIX}:quote:{symbol}"

    @staticmethod
    def history(
        feed: str, symbol: str, resolution: str, start: int, end: int, countback: int | None
    ) -> str:
        return f"{PREFIX}:history:{feed}:{symbol}:{resolution}:{start}:{end}:{countback or 0}"

    # execution (orders, fills, alerts) -----------------------------------------
    ORDERS_STREAM = f"{PREFIX}:stream:orders"  # every order transition, in order
    FILLS_STREAM = f"{PREFIX}:stream:fills"  # every fill: the journal consumes this
    ALERTS_STREAM = f"{PREFIX}:stream:alerts"  # every webhook decision
    EVENTS_CHANNEL = f"{PREFIX}:ch:events"  # order/fill events for WebSocket clients
    OPEN_ORDERS = f"{PREFIX}:orders:open"  # set of non-terminal order ids
    RECENT_ORDERS = f"{PREFIX}:orders:recent"  # zset id -> created time
    FILLS_SEEN = f"{PREFIX}:fills:seen"  # set of applied fill ids (idempotent apply)
    FILLS_INDEXED = f"{PREFIX}:fills:indexed"  # set once the per-symbol index covers the stream
    KILL_SWITCH = f"{PREFIX}:risk:kill-switch"

    @staticmethod
    def order(order_id: str) -> str:
        return f"{PREFIX}:order:{order_id}"

    @staticmethod
    def fills_by_symbol(symbol: str) -> str:
        """Zset: fill JSON scored by fill time, one per symbol (chart marks by time range)."""
        return f"{PREFIX}:fills:by-symbol:{symbol}"

    @staticmethod
    def instance(instance_id: str) -> str:
        """An execution engine's heartbeat (short TTL): its alert claims are live."""
        return f"{PREFIX}:instance:{instance_id}"

    @staticmethod
    def alert(alert_id: str) -> str:
        """Idempotency claim and stored decision for one alert."""
        return f"{PREFIX}:alert:{alert_id}"

    @staticmethod
    def ledger(account: str) -> str:
        return f"{PREFIX}:ledger:{account}"

    # paper broker ---------------------------------------------------------------
    @staticmethod
    def paper_orders(account: str) -> str:
        """Hash: client order id -> the paper broker's view of that order."""
        return f"{PREFIX}:paper:{account}:orders"

    # journal (TradeNote) ----------------------------------------------------------
    JOURNAL_GROUP = "journal"
    JOURNAL_DEAD_LETTERS = f"{PREFIX}:stream:fills:dead"
    JOURNAL_STATUS = f"{PREFIX}:journal:status"
    JOURNAL_LOCK = f"{PREFIX}:journal:lock"  # one TradeNote writer at a time
    JOURNAL_ATTEMPTS = f"{PREFIX}:journal:attempts"  # hash: stream entry id -> failed tries
    JOURNAL_DAYS = f"{PREFIX}:journal:days"  # zset: dateUnix of every journaled day
    JOURNAL_EOD = f"{PREFIX}:journal:eod"  # hash: dateUnix -> positions open at day end
    JOURNAL_ANALYTICS = f"{PREFIX}:journal:analytics"  # hash: params -> cached analytics


def create_redis(url: str, *, timeout: float = 2.0, max_connections: int = 256) -> Redis:
    """One pool per process; commands retry briefly on a dropped connection (Redis restart).

    A blocking pool: a burst waits briefly for a free connection instead of failing.
    """
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=15,
        retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), retries=3),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        decode_responses=False,
    )
    return Redis(connection_pool=pool)


def encode_quote(quote: Quote) -> bytes:
    return orjson.dumps(quote.model_dump())


def decode_quote(raw: bytes | str) -> Quote:
    return Quote.model_validate(orjson.loads(raw))


class QuoteCache:
    """Last quote per symbol with a short TTL, plus the pub/sub fan-out channel."""

    def __init__(self, redis: Redis, ttl_seconds: float) -> None:
        self.redis = redis
        self.ttl_ms = max(1, int(ttl_seconds * 1000))

    async def put_and_publish(self, quotes: Iterable[Quote]) -> int:
        """Cache each quote and publish the batch as one message (a JSON array), in one
        round trip: subscribers wake once per batch, not once per quote."""
        pipe = self.redis.pipeline(transaction=False)
        encoded = []
        for quote in quotes:
            raw = encode_quote(quote)
            pipe.set(Keys.quote(quote.symbol), raw, px=self.ttl_ms)
            encoded.append(raw)
        if encoded:
            pipe.publish(Keys.QUOTES_CHANNEL, b"[" + b",".join(encoded) + b"]")
            await pipe.execute()
        return len(encoded)

    async def get_many(self, symbols: list[str]) -> dict[str, Quote]:
        if not symbols:
            return {}
        values = await self.redis.mget([Keys.quote(s) for s in symbols])
        return {s: decode_quote(v) for s, v in zip(symbols, values, strict=True) if v is not None}
