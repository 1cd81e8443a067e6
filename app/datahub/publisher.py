"""The quote pump: one datahub process (holder of a Redis lease) streams the feed into
the quote cache and the fan-out channel; the others stand by and take over if it dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Sequence

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.bus import RELEASE_IF_HELD, RENEW_IF_HELD, Keys, QuoteCache
from app.feeds.base import Feed, FeedError
from app.observability.metrics import QUOTE_PUBLISHER, QUOTES_PUBLISHED
from app.retry import REDIS_RECONNECT, RetryPolicy, raise_if_cancelling

log = logging.getLogger(__name__)


class QuotePublisher:
    def __init__(
        self,
        feed: Feed,
        redis: Redis,
        cache: QuoteCache,
        symbols: Sequence[str],
        *,
        lease_seconds: float = 3.0,
        retry: RetryPolicy = REDIS_RECONNECT,
    ) -> None:
        self.feed = feed
        self.redis = redis
        self.cache = cache
        self.symbols = list(symbols)
        self.lease_ms = int(lease_seconds * 1000)
        self.retry = retry
        self.instance = uuid.uuid4().hex
        self.leader = False
        self.stopping = False  # set before cancelling: no retry loop outlives shutdown

    async def run(self) -> None:
        """Forever: win the lease, publish while holding it, back off on errors."""
        backoff = self.retry.waits()
        while not self.stopping:
            try:
                if await self._acquire():
                    backoff.reset()
                    await self._publish_while_leader()
                elif not self.stopping:
                    await asyncio.sleep(self.lease_ms / 3000)
            except (RedisError, OSError, FeedError) as exc:
                raise_if_cancelling()
                self._set_leader(False)
                if self.stopping:
                    return
                delay = next(backoff)
                log.warning("quote publisher error, retrying in %.1fs: %s", delay, exc)
                await asyncio.sleep(delay)

    async def stop(self) -> None:
        self.stopping = True
        if self.leader:
            with contextlib.suppress(RedisError):
                await self.redis.eval(RELEASE_IF_HELD, 1, Keys.QUOTE_PUBLISHER_LEASE, self.instance)
        self._set_leader(False)

    async def _acquire(self) -> bool:
        got = await self.redis.set(
            Keys.QUOTE_PUBLISHER_LEASE, self.instance, nx=True, px=self.lease_ms
        )
        return bool(got)

    async def _renew(self) -> bool:
        renewed = await self.redis.eval(
            RENEW_IF_HELD, 1, Keys.QUOTE_PUBLISHER_LEASE, self.instance, str(self.lease_ms)
        )
        return bool(renewed)

    def _set_leader(self, value: bool) -> None:
        if value != self.leader:
            log.info("quote publisher %s", "leading" if value else "standing by")
        self.leader = value
        QUOTE_PUBLISHER.set(1 if value else 0)

    async def _publish_while_leader(self) -> None:
        self._set_leader(True)
        loop = asyncio.get_running_loop()
        renew_every = self.lease_ms / 3000
        next_renew = loop.time() + renew_every
        counter = QUOTES_PUBLISHED.labels(self.feed.name)
        stream = self.feed.stream(self.symbols)
        try:
            async for batch in stream:
                if self.stopping:
                    return
                counter.inc(await self.cache.put_and_publish(batch))
                if loop.time() >= next_renew:
                    if not await self._renew():
                        log.warning("quote publisher lost its lease")
                        return
                    next_renew = loop.time() + renew_every
        finally:
            self._set_leader(False)
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
