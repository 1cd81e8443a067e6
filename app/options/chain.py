"""An option chain as every feed returns it: one expiration of one underlying.

Quotes carry the greeks the feed had and when it computed them (Tradier's greeks come
from ORATS about hourly; a decision says how old they were). Prices are per share
(x100 per contract, see ``app/models/instruments.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from app.models.occ import OccSymbol, OptionRight, format_occ


@dataclass(frozen=True, slots=True)
class OptionQuote:
    """One listed contract: top of book, session figures and greeks (None: not given)."""

    symbol: str  # OCC, compact form
    underlying: str
    expiration: date
    right: OptionRight
    strike: Decimal
    bid: float | None = None
    ask: float | None = None
    last: float | None = None
    volume: int = 0
    open_interest: int = 0
    delta: float | None = None
    gamma: float | None = None
    theta: float | None = None
    vega: float | None = None
    iv: float | None = None  # implied volatility (mid), annualised, 0.25 = 25 %
    greeks_time: float | None = None  # epoch seconds the greeks were computed

    @classmethod
    def of(
        cls,
        underlying: str,
        expiration: date,
        right: OptionRight,
        strike: Decimal,
        **fields: object,
    ) -> OptionQuote:
        symbol = format_occ(OccSymbol(underlying, expiration, right, strike))
        return cls(symbol, underlying, expiration, right, strike, **fields)  # type: ignore[arg-type]

    @property
    def mid(self) -> float | None:
        if self.bid is None or self.ask is None:
            return None
        return (self.bid + self.ask) / 2

    @property
    def width(self) -> float | None:
        """Ask minus bid: what crossing the spread costs per share."""
        if self.bid is None or self.ask is None:
            return None
        return self.ask - self.bid


@dataclass(frozen=True, slots=True)
class OptionChain:
    """The contracts of one expiration, ordered by right then strike."""

    underlying: str
    expiration: date
    underlying_price: float | None
    quotes: tuple[OptionQuote, ...]
    fetched_at: float  # epoch seconds the feed answered
    _by_symbol: dict[str, OptionQuote] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        self._by_symbol.update((q.symbol, q) for q in self.quotes)

    def __iter__(self) -> Iterator[OptionQuote]:
        return iter(self.quotes)

    def __len__(self) -> int:
        return len(self.quotes)

    def get(self, symbol: str) -> OptionQuote | None:
        return self._by_symbol.get(symbol)

    def side(self, right: OptionRight) -> list[OptionQuote]:
        """The calls or the puts, by strike."""
        return sorted((q for q in self.quotes if q.right is right), key=lambda q: q.strike)

    def strikes(self, right: OptionRight | None = None) -> list[Decimal]:
        return sorted({q.strike for q in self.quotes if right is None or q.right is right})

    @property
    def greeks_time(self) -> float | None:
        """The oldest greeks in the chain (what a decision's "greeks age" reports)."""
        times = [q.greeks_time for q in self.quotes if q.greeks_time is not None]
        return min(times) if times else None
