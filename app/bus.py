"""Redis: the one connection pool and every key, stream and channel name we use.

Nothing else in trader-ops spells a Redis key; grep here to see all state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import hiredis
import orjson
from redis.asyncio import BlockingConnectionPool, Connection, Redis
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

    # the bounded history cache: entry key -> expiry (ms), entry key -> size, total bytes
    HISTORY_INDEX = f"{PREFIX}:history-cache:index"
    HISTORY_SIZES = f"{PREFIX}:history-cache:sizes"
    HISTORY_BYTES = f"{PREFIX}:history-cache:bytes"

    # execution: global streams (every account's entries carry an ``account`` field) ----
    ORDERS_STREAM = f"{PREFIX}:stream:orders"  # every order transition, in order
    FILLS_STREAM = f"{PREFIX}:stream:fills"  # every fill: the journal consumes this
    ALERTS_STREAM = f"{PREFIX}:stream:alerts"  # every decision (one per alert and account)
    EVENTS_CHANNEL = f"{PREFIX}:ch:events"  # order/fill events for WebSocket clients
    DECISIONS_CHANNEL = f"{PREFIX}:ch:decisions"  # command results and replayed decisions
    FILLS_INDEXED = f"{PREFIX}:fills:indexed"  # set once the per-symbol index covers the stream
    EXECUTION_GROUP = "execution"  # consumer group on every account's inbound streams
    EXECUTION_CONSUMER = "engine"  # one name: a new lease holder owns what the last left pending

    @staticmethod
    def account(account: str) -> AccountKeys:
        """Every key of one trading account (its book, orders, alerts, kill switch, lease)."""
        return AccountKeys(account)

    @staticmethod
    def decisions_for(process: str) -> str:
        """One intake process's channel: the decisions of the alerts it took in."""
        return f"{PREFIX}:ch:decisions:{process}"

    @staticmethod
    def intake(alert_id: str) -> str:
        """An alert taken in: the accounts it was routed to (idempotency across accounts)."""
        return f"{PREFIX}:intake:{alert_id}"

    @staticmethod
    def repeat(digest: str) -> str:
        """An alert without ``alert_id``, by the digest of its content: the id it was taken
        in under, for ``TRADEROPS_ALERT_REPEAT_SECONDS`` (a true repeat within it is that
        alert again)."""
        return f"{PREFIX}:repeat:{digest}"

    @staticmethod
    def order(order_id: str) -> str:
        """Order ids are unique across accounts (the account is part of their hash)."""
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
    def ledger(account: str) -> str:
        return f"{PREFIX}:acct:{account}:ledger"

    # paper broker ---------------------------------------------------------------
    @staticmethod
    def paper_orders(account: str) -> str:
        """Hash: client order id -> the paper broker's view of that order."""
        return f"{PREFIX}:acct:{account}:paper:orders"

    # journal (TradeNote) ----------------------------------------------------------
    JOURNAL_GROUP = "journal"
    JOURNAL_DEAD_LETTERS = f"{PREFIX}:stream:fills:dead"
    JOURNAL_STATUS = f"{PREFIX}:journal:status"
    JOURNAL_LOCK = f"{PREFIX}:journal:lock"  # one TradeNote writer at a time
    JOURNAL_ATTEMPTS = f"{PREFIX}:journal:attempts"  # hash: stream entry id -> failed tries
    JOURNAL_DAYS = f"{PREFIX}:journal:days"  # zset: dateUnix of every journaled day
    JOURNAL_EOD = f"{PREFIX}:journal:eod"  # hash: dateUnix -> positions open at day end
    JOURNAL_ANALYTICS = f"{PREFIX}:journal:analytics"  # hash: params -> cached analytics

    # trade notifications (app/notify) ------------------------------------------------
    NOTIFY_OUTBOX = f"{PREFIX}:stream:notify"  # kill switch, breaker, unresolved: to notify
    NOTIFY_DEAD_LETTERS = f"{PREFIX}:stream:notify:dead"  # messages no channel took
    NOTIFY_GROUP = "notify"  # the notifier's consumer group on fills, alerts and the outbox


class AccountKeys:
    """One account's namespace, ``traderops:acct:<id>:``: nothing of one account's state
    can be read or written as another's (switching brokers does not mix books)."""

    __slots__ = (
        "alerts_in",
        "commands",
        "fence",
        "fills_seen",
        "id",
        "kill_switch",
        "lease",
        "ledger",
        "open_orders",
        "prefix",
        "recent_orders",
        "snapshot",
    )

    def __init__(self, account: str) -> None:
        p = f"{PREFIX}:acct:{account}"
        self.id = account
        self.prefix = p
        self.alerts_in = f"{p}:stream:alerts-in"  # intake -> this account's engine
        self.commands = f"{p}:stream:commands"  # admin commands (kill switch, flatten, cancel)
        self.lease = f"{p}:lease"  # the engine holding this account: "<instance>:<fence>"
        self.fence = f"{p}:fence"  # counter: each new lease holder's fencing token
        self.ledger = Keys.ledger(account)  # the book of record (FIFO lots, cash, day)
        self.open_orders = f"{p}:orders:open"  # set of non-terminal order ids
        self.recent_orders = f"{p}:orders:recent"  # zset id -> created time
        self.fills_seen = f"{p}:fills:seen"  # applied fill ids (idempotent apply)
        self.kill_switch = f"{p}:risk:kill-switch"
        self.snapshot = f"{p}:risk:snapshot"  # the holder's risk state, for every reader

    def alert(self, alert_id: str) -> str:
        """Idempotency claim and stored decision for one alert in this account."""
        return f"{self.prefix}:alert:{alert_id}"

    def command(self, command_id: str) -> str:
        """The stored result of one admin command."""
        return f"{self.prefix}:command:{command_id}"


# A key held with a value (a lease, a claim): extend or drop it only while it still holds
# ours, atomically. KEYS[1]: the key; ARGV[1]: our value (ARGV[2]: the TTL in ms).
RENEW_IF_HELD = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
RELEASE_IF_HELD = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


class _Connection(Connection):
    """Three costs of redis-py's asyncio connection on the execution path: each write is
    bounded by ``asyncio.wait_for`` (on Python 3.11 a new task per command; ``asyncio.
    timeout`` bounds it the same way without one), and commands are packed in Python
    (~75 us for a fill script's arguments; hiredis' packer, same bytes: ~8 us), and each
    pub/sub message is formatted for a debug line."""

    def set_parser(self, parser_class: Any) -> None:
        super().set_parser(parser_class)
        # redis-py's default handler formats every pub/sub message for a debug log line
        # (str() of the whole payload) whether or not debug logging is on
        if getattr(self._parser, "pubsub_push_handler_func", None) is not None:
            self._parser.set_pubsub_push_handler(_as_is)  # type: ignore[attr-defined]

    def pack_command(self, *args: Any) -> list[bytes]:
        first = args[0]
        name = first.encode() if isinstance(first, str) else first
        if isinstance(name, bytes) and b" " in name:  # 'CONFIG GET': separate arguments
            args = (*name.split(), *args[1:])
        try:
            return [hiredis.pack_command(args)]
        except TypeError:  # what hiredis cannot pack: redis-py's own error for it
            return super().pack_command(*args)

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        timeout = self.socket_timeout
        if not timeout:
            await super().send_packed_command(command, check_health)
            return
        self.socket_timeout = None  # (for this write only: redis-py's path without wait_for)
        try:
            async with asyncio.timeout(timeout):
                await super().send_packed_command(command, check_health)
        except TimeoutError:
            raise RedisTimeoutError("Timeout writing to socket") from None
        finally:
            self.socket_timeout = timeout


async def _as_is(response: Any) -> Any:
    return response


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
    if pool.connection_class is Connection:  # (TCP; unix sockets and TLS as redis-py has them)
        pool.connection_class = _Connection
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
