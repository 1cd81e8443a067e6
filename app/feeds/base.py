"""The feed protocol: what every market-data source gives the datahub."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import date
from typing import Protocol, runtime_checkable

from app.models.market import History, Quote, Resolution, SymbolInfo
from app.options.chain import OptionChain


class FeedError(Exception):
    """A feed could not answer (upstream down, rate limited past our retries...)."""


class NoOptionsError(FeedError):
    """The symbol lists no options (or the feed has none): a clear denial, not a 500."""


class UnknownSymbolError(FeedError):
    def __init__(self, symbol: str) -> None:
        super().__init__(f"unknown symbol {symbol!r}")
        self.symbol = symbol


@runtime_checkable
class Feed(Protocol):
    name: str

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise FeedError when the source is unreachable (used by /ready)."""

    async def resolve(self, symbol: str) -> SymbolInfo | None: ...

    async def search(self, query: str, limit: int = 30) -> list[SymbolInfo]: ...

    async def quotes(self, symbols: Sequence[str]) -> dict[str, Quote]:
        """Latest quotes; unknown symbols are absent from the result."""

    async def history(
        self,
        symbol: str,
        resolution: Resolution,
        start: int,
        end: int,
        countback: int | None = None,
    ) -> History:
        """Bars with ``start <= time < end``; with countback, the last N bars before ``end``."""

    def stream(self, symbols: Sequence[str]) -> AsyncIterator[list[Quote]]:
        """Quote updates in batches, forever, until cancelled."""

    async def expirations(self, symbol: str) -> list[date]:
        """Listed option expirations of an underlying, soonest first (NoOptionsError if none)."""

    async def chain(self, symbol: str, expiration: date) -> OptionChain:
        """Every contract of one expiration with bid, ask, volume, open interest and greeks.
        NoOptionsError when ``expiration`` is not listed."""
