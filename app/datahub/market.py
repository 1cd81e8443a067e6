"""Market data with a Redis cache in front of the feed (quotes ~1 s, history ~5 min)."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import orjson
from redis.asyncio import Redis

from app.bus import Keys, QuoteCache
from app.config import Settings
from app.datahub.ratelimit import SourceRateLimiter
from app.feeds.base import Feed, FeedError
from app.models.market import History, Quote, Resolution, SymbolInfo
from app.observability.metrics import CACHE_REQUESTS, FEED_LATENCY


class RangeError(ValueError):
    """A history request the datahub refuses before touching the feed."""


class HistoryBusy(FeedError):
    """Every history worker stayed busy past ``history_busy_seconds``: retry later (503)."""


# Store a history body and evict the soonest-expiring entries while the total is over
# budget. KEYS: entry, index, sizes, total. ARGV: body, ttl ms, budget bytes, now ms.
_CACHE_SCRIPT = """
local entry, index, sizes, total = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local size = string.len(ARGV[1])
local now = tonumber(ARGV[4])
redis.call('SET', entry, ARGV[1], 'PX', ARGV[2])
local old = tonumber(redis.call('HGET', sizes, entry) or '0')
redis.call('HSET', sizes, entry, size)
redis.call('ZADD', index, now + tonumber(ARGV[2]), entry)
local used = redis.call('INCRBY', total, size - old)
local budget = tonumber(ARGV[3])
local gone = redis.call('ZRANGEBYSCORE', index, '-inf', now)
for _, key in ipairs(gone) do
  used = redis.call('INCRBY', total, -tonumber(redis.call('HGET', sizes, key) or '0'))
  redis.call('HDEL', sizes, key)
  redis.call('ZREM', index, key)
end
while used > budget do
  local oldest = redis.call('ZRANGE', index, 0, 0)
  if #oldest == 0 then break end
  local key = oldest[1]
  used = redis.call('INCRBY', total, -tonumber(redis.call('HGET', sizes, key) or '0'))
  redis.call('HDEL', sizes, key)
  redis.call('ZREM', index, key)
  redis.call('DEL', key)
end
return used
"""


class LookupLimitedError(Exception):
    """A client asked the feed about too many symbols not in the cache (``retry_after`` s)."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"too many symbol lookups from this client; retry in {retry_after:.0f}s")
        self.retry_after = retry_after


class SymbolLookups:
    """``feed.resolve`` with a bounded cache of answers, unknown symbols included.

    A client naming 500 made-up symbols costs the feed (Tradier: the operator's quota)
    each name once per ``ttl``, not once per message; and the lookups a client may cause
    (answers not in the cache) are rate-limited per client address."""

    def __init__(
        self,
        feed: Feed,
        *,
        ttl: float = 300.0,
        size: int = 10_000,
        per_client: SourceRateLimiter | None = None,
    ) -> None:
        self.feed = feed
        self.ttl = ttl
        self.size = size
        self.per_client = per_client or SourceRateLimiter(rate=2.0, burst=60)
        self._known: OrderedDict[str, tuple[float, SymbolInfo | None]] = OrderedDict()

    def cached(self, symbol: str) -> bool:
        """Answered from the cache (no feed call) if asked now."""
        hit = self._known.get(symbol)
        return hit is not None and hit[0] > time.monotonic()

    async def resolve(self, symbol: str, client: str | None = None) -> SymbolInfo | None:
        """``client``: the caller's address; its uncached lookups are rate-limited
        (LookupLimitedError)."""
        now = time.monotonic()
        hit = self._known.get(symbol)
        if hit is not None and hit[0] > now:
            self._known.move_to_end(symbol)
            CACHE_REQUESTS.labels("symbol", "hit").inc()
            return hit[1]
        if client is not None and (wait := self.per_client.allow(client)):
            raise LookupLimitedError(wait)
        CACHE_REQUESTS.labels("symbol", "miss").inc()
        info = await self.feed.resolve(symbol)
        self._known[symbol] = (now + self.ttl, info)
        self._known.move_to_end(symbol)
        while len(self._known) > self.size:
            self._known.popitem(last=False)
        return info


def history_columns(history: History) -> dict[str, object]:
    """UDF's columnar form: equal-length arrays, ascending time."""
    return history.udf_columns()


class MarketData:
    def __init__(
        self,
        feed: Feed,
        redis: Redis,
        *,
        quote_ttl: float,
        history_ttl: int,
        max_bars: int,
        cache_bytes: int = 64 * 2**20,
        busy_seconds: float = 2.0,
        workers: int = 1,
    ) -> None:
        self.feed = feed
        self.redis = redis
        self.cache = QuoteCache(redis, quote_ttl)
        self.history_ttl = history_ttl
        self.max_bars = max_bars
        self.quote_ttl = quote_ttl
        self.fresh: dict[str, tuple[float, dict[str, Any]]] = {}  # from the fan-out: no round trip
        self.symbols = SymbolLookups(feed)
        self.cache_bytes = cache_bytes
        self.busy_seconds = busy_seconds
        # cold history is CPU work (simulated feed) or a feed round trip: a few at a time,
        # so a burst of uncacheable requests queues here instead of starving the loop
        self._workers = asyncio.Semaphore(workers)
        self._store = redis.register_script(_CACHE_SCRIPT)

    @classmethod
    def from_settings(cls, feed: Feed, redis: Redis, settings: Settings) -> MarketData:
        return cls(
            feed,
            redis,
            quote_ttl=settings.quote_ttl_seconds,
            history_ttl=settings.history_ttl_seconds,
            max_bars=settings.max_history_bars,
            cache_bytes=settings.history_cache_mb * 2**20,
            busy_seconds=settings.history_busy_seconds,
        )

    def offer(self, quote: dict[str, Any]) -> None:
        """Hub listener: remember the latest fan-out quote per symbol."""
        self.fresh[quote["symbol"]] = (time.monotonic(), quote)

    async def quotes(self, symbols: Sequence[str]) -> dict[str, Quote]:
        """Cached quotes first; whatever is missing comes from the feed and is cached."""
        wanted = list(dict.fromkeys(symbols))
        found: dict[str, Quote] = {}
        horizon = time.monotonic() - self.quote_ttl
        for symbol in wanted:
            entry = self.fresh.get(symbol)
            if entry is not None and entry[0] >= horizon:
                found[symbol] = Quote.model_construct(**entry[1])
        if len(found) == len(wanted):
            CACHE_REQUESTS.labels("quote", "memory").inc(len(found))
            return found
        found.update(await self.cache.get_many([s for s in wanted if s not in found]))
        CACHE_REQUESTS.labels("quote", "hit").inc(len(found))
        missing = [s for s in wanted if s not in found]
        if missing:
            CACHE_REQUESTS.labels("quote", "miss").inc(len(missing))
            with FEED_LATENCY.labels(self.feed.name, "quotes").time():
                fresh = await self.feed.quotes(missing)
            if fresh:
                pipe = self.redis.pipeline(transaction=False)
                for quote in fresh.values():
                    pipe.set(
                        Keys.quote(quote.symbol),
                        orjson.dumps(quote.model_dump()),
                        px=self.cache.ttl_ms,
                    )
                await pipe.execute()
            found.update(fresh)
        return {s: found[s] for s in wanted if s in found}

    def check_range(
        self, resolution: Resolution, start: int, end: int, countback: int | None
    ) -> None:
        if start < 0 or end < 0:
            raise RangeError("from and to must be Unix seconds >= 0")
        if countback is not None:
            if countback <= 0:
                raise RangeError("countback must be positive")
            if countback > self.max_bars:
                raise RangeError(
                    f"countback {countback} exceeds the maximum of {self.max_bars} bars"
                )
            return
        if start >= end:
            raise RangeError("from must be before to")
        bars = (end - start) // resolution.seconds
        if bars > self.max_bars:
            raise RangeError(
                f"range spans about {bars} bars at resolution {resolution.value}; "
                f"the maximum is {self.max_bars}: narrow from/to or use countback"
            )

    async def history_body(
        self, symbol: str, resolution: Resolution, start: int, end: int, countback: int | None
    ) -> bytes:
        """The UDF history body as JSON bytes, served from Redis when warm.

        Ranges that end before the forming bar never change and stay cached for the
        history TTL; ranges that include it are cached for the quote TTL only.
        """
        self.check_range(resolution, start, end, countback)
        start, end = self.normalise(resolution, start, end, countback)
        key = Keys.history(self.feed.name, symbol, resolution.value, start, end, countback)
        cached = await self._cached(key)
        if cached is not None:
            return cached
        CACHE_REQUESTS.labels("history", "miss").inc()
        try:
            async with asyncio.timeout(self.busy_seconds):
                await self._workers.acquire()
        except TimeoutError:
            raise HistoryBusy("history workers busy; retry") from None
        try:
            cached = await self._cached(key)  # computed while we queued?
            if cached is not None:
                return cached
            with FEED_LATENCY.labels(self.feed.name, "history").time():
                body = await self._compute(symbol, resolution, start, end, countback)
        finally:
            self._workers.release()
        closed = end <= resolution.bar_start(int(time.time()))
        ttl_ms = self.history_ttl * 1000 if closed else self.cache.ttl_ms
        await self._store(
            keys=[key, Keys.HISTORY_INDEX, Keys.HISTORY_SIZES, Keys.HISTORY_BYTES],
            args=[body, ttl_ms, self.cache_bytes, int(time.time() * 1000)],
        )
        return body

    async def _compute(
        self, symbol: str, resolution: Resolution, start: int, end: int, countback: int | None
    ) -> bytes:
        """The encoded body from the feed: its own ``history_body`` when it has one (the
        simulated feed computes it in a worker process), else its bars encoded here."""
        own = getattr(self.feed, "history_body", None)
        if own is not None:
            body: bytes = await own(symbol, resolution, start, end, countback)
            return body
        history = await self.feed.history(symbol, resolution, start, end, countback)
        if len(history.bars) > 500:  # 20,000 bars take ~20 ms to encode: not on the loop
            return await asyncio.to_thread(_encode, history)
        return _encode(history)

    async def _cached(self, key: str) -> bytes | None:
        cached = await self.redis.get(key)
        if cached is None:
            return None
        CACHE_REQUESTS.labels("history", "hit").inc()
        return cached if isinstance(cached, bytes) else cached.encode()

    @staticmethod
    def normalise(
        resolution: Resolution, start: int, end: int, countback: int | None
    ) -> tuple[int, int]:
        """One cache entry per set of bars: ``to`` beyond now is now; ``from`` and ``to``
        move up to bar boundaries (bars are ``from <= time < to``, the same set); with
        ``countback``, ``from`` plays no part."""
        end = min(end, int(time.time()) + 1)
        end = _ceil_bar(resolution, end)
        start = 0 if countback is not None else _ceil_bar(resolution, start)
        return start, end


def _encode(history: History) -> bytes:
    return orjson.dumps(history_columns(history))


def _ceil_bar(resolution: Resolution, ts: int) -> int:
    first = resolution.bar_start(ts)
    return ts if first == ts else resolution.next_bar_start(first)
