"""Market data with a Redis cache in front of the feed (quotes ~1 s, history ~5 min)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import orjson
from redis.asyncio import Redis

from app.bus import Keys, QuoteCache
from app.config import Settings
from app.feeds.base import Feed
from app.models.market import History, Quote, Resolution
from app.observability.metrics import CACHE_REQUESTS, FEED_LATENCY


class RangeError(ValueError):
    """A history request the datahub refuses before touching the feed."""


def history_columns(history: History) -> dict[str, object]:
    """UDF's columnar form: equal-length arrays, ascending time."""
    if not history.bars:
        body: dict[str, object] = {"s": "no_data"}
        if history.next_time is not None:
            body["nextTime"] = history.next_time
        return body
    bars = history.bars
    return {
        "s": "ok",
        "t": [b.time for b in bars],
        "o": [b.open for b in bars],
        "h": [b.high for b in bars],
        "l": [b.low for b in bars],
        "c": [b.close for b in bars],
        "v": [b.volume for b in bars],
    }


class MarketData:
    def __init__(
        self,
        feed: Feed,
        redis: Redis,
        *,
        quote_ttl: float,
        history_ttl: int,
        max_bars: int,
    ) -> None:
        self.feed = feed
        self.redis = redis
        self.cache = QuoteCache(redis, quote_ttl)
        self.history_ttl = history_ttl
        self.max_bars = max_bars
        self.quote_ttl = quote_ttl
        self.fresh: dict[str, tuple[float, dict[str, Any]]] = {}  # from the fan-out: no round trip

    @classmethod
    def from_settings(cls, feed: Feed, redis: Redis, settings: Settings) -> MarketData:
        return cls(
            feed,
            redis,
            quote_ttl=settings.quote_ttl_seconds,
            history_ttl=settings.history_ttl_seconds,
            max_bars=settings.max_history_bars,
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
        key = Keys.history(self.feed.name, symbol, resolution.value, start, end, countback)
        cached = await self.redis.get(key)
        if cached is not None:
            CACHE_REQUESTS.labels("history", "hit").inc()
            return cached if isinstance(cached, bytes) else cached.encode()
        CACHE_REQUESTS.labels("history", "miss").inc()
        with FEED_LATENCY.labels(self.feed.name, "history").time():
            history = await self.feed.history(symbol, resolution, start, end, countback)
        body = orjson.dumps(history_columns(history))
        closed = end <= resolution.bar_start(int(time.time()))
        if closed:
            await self.redis.set(key, body, ex=self.history_ttl)
        else:
            await self.redis.set(key, body, px=self.cache.ttl_ms)
        return body
