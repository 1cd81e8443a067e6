"""Option chains with a short cache in front of the feed: what deciding and risk read.

A chain is fetched once per ``ttl`` (default 15 s: quotes move, greeks barely do) per
(underlying, expiration), concurrent askers share one fetch, and the latest quote of
every contract seen stays readable synchronously (:meth:`OptionChains.quote`) for the
risk checks, which never wait on I/O.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Protocol, TypeVar, cast

from app.options.chain import OptionChain, OptionQuote

T = TypeVar("T")


class ChainFeed(Protocol):
    """What a feed offers for options (``app/feeds/base.py``)."""

    async def expirations(self, symbol: str) -> list[date]: ...

    async def chain(self, symbol: str, expiration: date) -> OptionChain: ...


class OptionChains:
    def __init__(
        self,
        feed: ChainFeed,
        *,
        ttl: float = 15.0,
        expirations_ttl: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.feed = feed
        self.ttl = ttl
        self.expirations_ttl = expirations_ttl
        self.clock = clock
        self._chains: dict[tuple[str, date], tuple[float, OptionChain]] = {}
        self._expirations: dict[str, tuple[float, list[date]]] = {}
        self._inflight: dict[object, asyncio.Future[object]] = {}
        self._quotes: dict[str, OptionQuote] = {}  # latest seen per contract

    async def expirations(self, symbol: str) -> list[date]:
        hit = self._expirations.get(symbol)
        if hit is not None and self.clock() - hit[0] < self.expirations_ttl:
            return hit[1]
        found: list[date] = await self._once(("x", symbol), lambda: self.feed.expirations(symbol))
        self._expirations[symbol] = (self.clock(), found)
        return found

    async def chain(self, symbol: str, expiration: date) -> OptionChain:
        key = (symbol, expiration)
        hit = self._chains.get(key)
        if hit is not None and self.clock() - hit[0] < self.ttl:
            return hit[1]
        found: OptionChain = await self._once(key, lambda: self.feed.chain(symbol, expiration))
        self.remember(found)
        return found

    def remember(self, chain: OptionChain) -> None:
        self._chains[(chain.underlying, chain.expiration)] = (self.clock(), chain)
        for q in chain.quotes:
            self._quotes[q.symbol] = q

    def quote(self, symbol: str) -> OptionQuote | None:
        """The latest quote and greeks seen of one contract (synchronous; may be stale)."""
        return self._quotes.get(symbol)

    async def _once(self, key: object, fetch: Callable[[], Awaitable[T]]) -> T:
        """One fetch per key at a time; concurrent askers await the same answer."""
        running = self._inflight.get(key)
        if running is not None:
            return cast(T, await asyncio.shield(running))
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            result = await fetch()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: the sharers re-raise it themselves
            raise
        finally:
            self._inflight.pop(key, None)
        future.set_result(result)
        return result
