"""An account's option positions as the spreads they make: one group per (strategy,
underlying), its legs priced and its greeks summed.

Pure: given the book's positions (``app/models/portfolio.py``) and a synchronous quote
lookup (``OptionChains.quote``), no I/O. Money is per position (price x quantity x the
contract's multiplier, 100), greeks in share equivalents (delta x 100 x contracts: the
shares of the underlying that move alike; theta and vega the same way, so dollars per day
and per volatility point).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import date
from itertools import pairwise

from pydantic import BaseModel, Field

from app.models.occ import OccSymbol, OptionRight, is_occ, parse_occ
from app.models.portfolio import Position
from app.options.chain import OptionQuote

GREEKS = ("delta", "gamma", "theta", "vega")

QuoteOf = Callable[[str], OptionQuote | None]


class OptionLeg(BaseModel):
    """One contract of a group: the strategy's share of an option position."""

    symbol: str = Field(description="OCC option symbol")
    right: OptionRight
    strike: float
    expiration: date
    quantity: int | float = Field(description="contracts, signed: negative is short")
    avg_price: float = Field(description="per share (x multiplier per contract)")
    multiplier: float
    last: float | None = Field(None, description="the book's last mark of the contract")
    mark: float | None = Field(
        None,
        description="what the leg is valued at: the chain's mid, else its last, else the book's",
    )
    cost: float = Field(description="quantity x avg price x multiplier (negative: a credit)")
    unrealized_pnl: float | None = None
    delta: float | None = Field(None, description="share equivalents: delta x multiplier x qty")
    gamma: float | None = None
    theta: float | None = Field(None, description="dollars per day")
    vega: float | None = Field(None, description="dollars per volatility point")
    iv: float | None = None
    greeks_time: float | None = Field(None, description="epoch seconds the greeks are of")


class SpreadGroup(BaseModel):
    """One strategy's option legs on one underlying, with their net figures."""

    strategy: str
    underlying: str
    kind: str = Field(description="what the legs make: vertical, straddle, iron condor, ...")
    legs: list[OptionLeg]
    net_cost: float = Field(description="sum of the legs' cost: positive paid, negative received")
    unrealized_pnl: float | None = Field(None, description="null while a leg has no mark")
    delta: float | None = Field(None, description="null while a leg's greek is unknown")
    gamma: float | None = None
    theta: float | None = None
    vega: float | None = None
    greeks_time: float | None = Field(None, description="the oldest greeks among the legs")


def group_positions(positions: Iterable[Position], quote_of: QuoteOf) -> list[SpreadGroup]:
    """Every option position's strategy parts, grouped per (strategy, underlying)."""
    legs: dict[tuple[str, str], list[OptionLeg]] = {}
    for p in positions:
        if not is_occ(p.symbol):
            continue
        try:
            contract = parse_occ(p.symbol)
        except ValueError:
            continue
        quote = quote_of(p.symbol)
        parts = [(s.strategy, s.quantity, s.avg_price) for s in p.strategies if s.quantity]
        if not parts and p.quantity:  # a book stored before strategies were kept
            parts = [("default", p.quantity, p.avg_price)]
        for strategy, quantity, avg_price in parts:
            leg = _leg(p, contract, quote, quantity, avg_price)
            legs.setdefault((strategy, contract.underlying), []).append(leg)
    return [
        _group(strategy, underlying, found)
        for (strategy, underlying), found in sorted(legs.items())
    ]


def _leg(
    p: Position,
    contract: OccSymbol,
    quote: OptionQuote | None,
    quantity: int | float,
    avg_price: float,
) -> OptionLeg:
    mult = p.multiplier
    mark = _mark(quote, p.last_price)
    scale = mult * quantity
    greeks = {g: _scaled(getattr(quote, g) if quote else None, scale) for g in GREEKS}
    return OptionLeg(
        symbol=p.symbol,
        right=contract.right,
        strike=float(contract.strike),
        expiration=contract.expiry,
        quantity=quantity,
        avg_price=avg_price,
        multiplier=mult,
        last=p.last_price,
        mark=mark,
        cost=round(quantity * avg_price * mult, 2),
        unrealized_pnl=None
        if mark is None
        else round((mark - avg_price) * scale, 2) + 0.0,  # not -0.0
        iv=quote.iv if quote else None,
        greeks_time=quote.greeks_time if quote else None,
        **greeks,
    )


def _mark(quote: OptionQuote | None, book_last: float | None) -> float | None:
    if quote is not None:
        if quote.mid is not None:
            return round(quote.mid, 6)
        if quote.last is not None:
            return quote.last
    return book_last


def _scaled(value: float | None, scale: float) -> float | None:
    return None if value is None else round(value * scale, 4)


def _total(values: Sequence[float | None], digits: int) -> float | None:
    """The sum, or None when any part is unknown (a partial sum would mislead)."""
    if any(v is None for v in values):
        return None
    return round(sum(v for v in values if v is not None), digits)


def _group(strategy: str, underlying: str, legs: list[OptionLeg]) -> SpreadGroup:
    legs.sort(key=lambda leg: (leg.expiration, leg.strike, leg.right.value))
    times = [leg.greeks_time for leg in legs if leg.greeks_time is not None]
    greeks = {g: _total([getattr(leg, g) for leg in legs], 4) for g in GREEKS}
    return SpreadGroup(
        strategy=strategy,
        underlying=underlying,
        kind=describe(legs),
        legs=legs,
        net_cost=round(sum(leg.cost for leg in legs), 2),
        unrealized_pnl=_total([leg.unrealized_pnl for leg in legs], 2),
        greeks_time=min(times) if times else None,
        **greeks,
    )


# -- what the legs make ------------------------------------------------------------------
def describe(legs: Sequence[OptionLeg]) -> str:
    """A name for the combination (``custom`` when it is none of the common ones)."""
    if len(legs) == 1:
        leg = legs[0]
        return f"{'long' if leg.quantity > 0 else 'short'} {leg.right.value}"
    if len(legs) == 2:
        return _two(legs[0], legs[1])
    if len({leg.expiration for leg in legs}) != 1:
        return "custom"
    if len(legs) == 3:
        return _butterfly(legs)
    if len(legs) == 4:
        return _four(legs)
    return "custom"


def _two(a: OptionLeg, b: OptionLeg) -> str:
    opposite = (a.quantity > 0) != (b.quantity > 0)
    same_size = abs(a.quantity) == abs(b.quantity)
    if not same_size:
        return "ratio spread" if a.right is b.right and opposite else "custom"
    if a.right is b.right and opposite:
        if a.expiration == b.expiration:
            return f"{a.right.value} vertical"
        return "calendar" if a.strike == b.strike else "diagonal"
    if a.right is not b.right and not opposite and a.expiration == b.expiration:
        side = "long" if a.quantity > 0 else "short"
        return f"{side} {'straddle' if a.strike == b.strike else 'strangle'}"
    if a.right is not b.right and opposite and a.expiration == b.expiration:
        return "risk reversal"
    return "custom"


def _butterfly(legs: Sequence[OptionLeg]) -> str:
    """Same right, strikes evenly apart, quantities 1 : -2 : 1 (or the reverse)."""
    if len({leg.right for leg in legs}) != 1:
        return "custom"
    low, mid, high = legs
    even = mid.strike - low.strike == high.strike - mid.strike > 0
    q = low.quantity
    if even and q and high.quantity == q and mid.quantity == -2 * q:
        return f"{legs[0].right.value} butterfly"
    return "custom"


def _four(legs: Sequence[OptionLeg]) -> str:
    """A put vertical below a call vertical, same size: iron condor (or butterfly)."""
    puts = [leg for leg in legs if leg.right is OptionRight.PUT]
    calls = [leg for leg in legs if leg.right is OptionRight.CALL]
    size = {abs(leg.quantity) for leg in legs}
    if len(puts) != 2 or len(calls) != 2 or len(size) != 1:
        return "custom"
    if any((x.quantity > 0) == (y.quantity > 0) for x, y in (puts, calls)):
        return "custom"
    strikes = [leg.strike for leg in (*puts, *calls)]
    if any(x > y for x, y in pairwise(strikes)):
        return "custom"
    inner_put, inner_call = max(puts, key=_strike), min(calls, key=_strike)
    short_inside = inner_put.quantity < 0 and inner_call.quantity < 0
    long_inside = inner_put.quantity > 0 and inner_call.quantity > 0
    if not (short_inside or long_inside):
        return "custom"
    shape = "iron butterfly" if inner_put.strike == inner_call.strike else "iron condor"
    return shape if short_inside else f"reverse {shape}"


def _strike(leg: OptionLeg) -> float:
    return leg.strike
