"""Simulated option prices and greeks: Black-Scholes on a skewed volatility surface.

The surface's at-the-money level is the underlying's own simulated volatility (with a
mild upward term structure); the skew lifts implied volatility below the money, as
equity index and stock options trade (a quadratic in standardised moneyness, so far
wings curl up again). One implied volatility per strike, shared by the call and the
put, so put-call parity holds on the theoretical prices.

Prices and greeks come from QuantLib's ``BlackCalculator`` (European exercise, no
dividend, flat ``RATE``). Units as US option chains quote them, per share: theta per
calendar day, vega per volatility point (0.01), implied volatility annualised.

The market around the theoretical price: a spread that widens with the price and away
from the money (one-cent tick, at least one tick wide, no bid when the option is worth
less than half the spread), open interest and volume that peak at the money, all a
function of (seed, contract, day) so every process agrees.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import QuantLib as ql

from app.feeds.sim_listing import Kind, Listing
from app.models.market import Quote
from app.models.occ import OccSymbol, OptionRight, format_occ
from app.options.chain import OptionChain, OptionQuote

RATE = 0.04  # flat risk-free rate, continuously compounded
YEAR = 365.0 * 86_400
MIN_YEARS = 60.0 / YEAR  # one minute: the model's floor on time to expiry
SKEW = 0.12  # IV change per standard deviation of moneyness (negative slope)
SMILE = 0.02  # curvature: far wings curl up
WING = 5.0  # standard deviations of moneyness beyond which the surface is flat
OI_SHARE = {Kind.MONTHLY: 1.0, Kind.WEEKLY: 0.4, Kind.DAILY: 0.15}
TICK = 0.01  # the minimum price increment

_CALL = ql.Option.Call
_PUT = ql.Option.Put


@dataclass(frozen=True, slots=True)
class Underlying:
    """What the option model reads of the underlying at one moment."""

    symbol: str
    price: float
    vol: float  # annualised volatility the simulation moves it with
    daily_volume: int
    fund: bool  # an ETF: tighter markets, more open interest
    traded: float  # share of a day's volume traded so far, 0..1


@dataclass(frozen=True, slots=True)
class Greeks:
    theo: float
    delta: float
    gamma: float
    theta: float  # per calendar day
    vega: float  # per volatility point
    iv: float


def years_to(close: float, now: float) -> float:
    return max((close - now) / YEAR, MIN_YEARS)


def moneyness(strike: float, forward: float, atm: float, years: float) -> float:
    """Log-moneyness in standard deviations (time floored at a day so 0DTE wings stay sane)."""
    return math.log(strike / forward) / (atm * math.sqrt(max(years, 1 / 365)))


def surface_vol(base: float, strike: float, forward: float, years: float) -> float:
    """Implied volatility at ``strike``: the ATM level, skewed and smiled.

    Moneyness is held within +-``WING`` standard deviations: beyond, the volatility stays
    flat. With the smile's curvature below 1/WING**2 the call delta then falls with the
    strike everywhere (d1 = u / f(u) grows while 1 - SMILE * u**2 > 0).
    """
    atm = base * (0.95 + 0.1 * min(1.0, years))
    m = min(WING, max(-WING, moneyness(strike, forward, atm, years)))
    return atm * (1 - SKEW * m + SMILE * m * m)


def payoff(right: OptionRight, strike: float) -> Any:
    """QuantLib's payoff of a call or put (kept with the contract: it does not change)."""
    return ql.PlainVanillaPayoff(_CALL if right is OptionRight.CALL else _PUT, strike)


def black_scholes(payoff: Any, spot: float, years: float, vol: float) -> Greeks:
    """Price and greeks of a European option (QuantLib's closed form)."""
    discount = math.exp(-RATE * years)
    calc = ql.BlackCalculator(payoff, spot / discount, vol * math.sqrt(years), discount)
    return Greeks(
        theo=calc.value(),
        delta=calc.delta(spot),
        gamma=calc.gamma(spot),
        theta=calc.theta(spot, years) / 365.0,
        vega=calc.vega(years) / 100.0,
        iv=vol,
    )


def _units(*parts: object) -> tuple[float, float]:
    """Two deterministic numbers in [0, 1) from ``parts``."""
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=16).digest()
    return int.from_bytes(digest[:8], "big") / 2**64, int.from_bytes(digest[8:], "big") / 2**64


def market(theo: float, m: float, fund: bool) -> tuple[float, float, float]:
    """(bid, ask, last) around ``theo``: one-cent tick, wider for dearer and far-from-the-
    money contracts, no bid (0.0) when the option is worth less than half the spread."""
    width = (0.01 + 0.005 * theo) if fund else (0.03 + 0.015 * theo)
    width *= 1 + 0.15 * min(abs(m), 6.0)
    half = max(TICK, width) / 2
    # whole cents (the epsilon keeps 1.23 from flooring to 1.22 through binary noise)
    bid = max(0, math.floor((theo - half) * 100 + 1e-9))
    ask = max(math.ceil((theo + half) * 100 - 1e-9), bid + 1)
    last = min(max(math.floor(theo * 100 + 0.5), bid, 1), ask)
    return bid / 100, ask / 100, last / 100


@dataclass(frozen=True, slots=True)
class Contract:
    """A listed contract and what stays fixed through its day."""

    symbol: str
    right: OptionRight
    strike: Decimal
    oi_noise: float  # in [0.5, 1.5): scatter of open interest and volume around the shape
    volume_noise: float
    payoff: Any = field(compare=False, repr=False)  # QuantLib's PlainVanillaPayoff


@dataclass(frozen=True, slots=True)
class Series:
    """The contracts of one expiration on one day: calls by strike, then puts."""

    underlying: str
    listing: Listing
    contracts: tuple[Contract, ...]
    by_symbol: dict[str, Contract]

    @classmethod
    def build(
        cls, seed: int, underlying: str, listing: Listing, strikes: list[Decimal], day: int
    ) -> Series:
        contracts = []
        for right in (OptionRight.CALL, OptionRight.PUT):
            for strike in strikes:
                symbol = format_occ(OccSymbol(underlying, listing.expiration, right, strike))
                oi, volume = _units(seed, symbol, day)
                contracts.append(
                    Contract(
                        symbol, right, strike, 0.5 + oi, 0.5 + volume, payoff(right, float(strike))
                    )
                )
        return cls(underlying, listing, tuple(contracts), {c.symbol: c for c in contracts})


class OptionModel:
    """Prices the contracts of one series at one moment of the underlying."""

    __slots__ = ("_points", "base_oi", "forward", "listing", "now", "turnover", "under", "years")

    def __init__(self, under: Underlying, listing: Listing, now: float) -> None:
        self.under = under
        self.listing = listing
        self.now = now
        self.years = years_to(listing.close, now)
        self.forward = under.price * math.exp(RATE * self.years)
        self.base_oi = under.daily_volume / (400 if under.fund else 1500) * OI_SHARE[listing.kind]
        self.turnover = 0.6 / (1 + 20 * self.years)  # short-dated series trade their open interest
        self._points: dict[Decimal, tuple[float, float]] = {}

    def _point(self, strike: Decimal) -> tuple[float, float]:
        """(implied volatility, moneyness) at ``strike``: shared by the call and the put."""
        point = self._points.get(strike)
        if point is None:
            k = float(strike)
            vol = surface_vol(self.under.vol, k, self.forward, self.years)
            point = (vol, moneyness(k, self.forward, self.under.vol, self.years))
            self._points[strike] = point
        return point

    def contract(self, c: Contract) -> OptionQuote:
        vol, m = self._point(c.strike)
        g = black_scholes(c.payoff, self.under.price, self.years, vol)
        bid, ask, last = market(g.theo, m, self.under.fund)
        shape = math.exp(-0.5 * (m / 1.5) ** 2)  # open interest and volume peak at the money
        oi = int(self.base_oi * shape * c.oi_noise)
        volume = int(self.base_oi * shape * self.turnover * c.volume_noise * self.under.traded)
        return OptionQuote(
            symbol=c.symbol,
            underlying=self.under.symbol,
            expiration=self.listing.expiration,
            right=c.right,
            strike=c.strike,
            bid=bid,
            ask=ask,
            last=last,
            volume=volume,
            open_interest=oi,
            delta=g.delta,
            gamma=g.gamma,
            theta=g.theta,
            vega=g.vega,
            iv=vol,
            greeks_time=self.now,
        )

    def chain(self, series: Series) -> OptionChain:
        return OptionChain(
            underlying=self.under.symbol,
            expiration=self.listing.expiration,
            underlying_price=self.under.price,
            quotes=tuple(self.contract(c) for c in series.contracts),
            fetched_at=self.now,
        )

    def quote(self, c: Contract) -> Quote:
        """The contract as a plain ``Quote`` (what brokers and the datahub read)."""
        q = self.contract(c)
        assert q.bid is not None and q.ask is not None and q.last is not None
        size, _ = _units(c.symbol, round(self.now, 3))
        return Quote(
            symbol=q.symbol,
            time=round(self.now, 3),
            last=q.last,
            bid=q.bid,
            ask=q.ask,
            bid_size=1 + int(size * 50) if q.bid > 0 else 0,
            ask_size=1 + int(size * 7919) % 50,
            volume=q.volume,
        )
