"""The simulated feed's options desk: listed expirations, chains and OCC contract quotes.

It reads the underlying through the feed's public model (``quote_at``, ``close_range``)
and prices with ``app.feeds.sim_options``; listing rules are in ``app.feeds.sim_listing``.
Everything is a function of (seed, symbol, time): two processes list and price alike.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from datetime import date
from typing import Protocol

from app.feeds.base import NoOptionsError
from app.feeds.sim_listing import Listing, listings, new_york_date, strike_grid
from app.feeds.sim_options import Contract, OptionModel, Series, Underlying
from app.feeds.universe import Instrument
from app.models.market import Quote, SymbolInfo
from app.models.occ import format_occ, is_occ, parse_occ
from app.options.chain import OptionChain

DAY = 86_400
EPOCH = date(1970, 1, 1)
SERIES_CACHE = 256


class UnderlyingModel(Protocol):
    """What the desk needs of the simulated feed."""

    @property
    def instruments(self) -> Mapping[str, Instrument]: ...

    def quote_at(self, symbol: str, ts: float) -> Quote: ...

    def close_range(self, symbol: str, first_day: int, last_day: int) -> tuple[float, float]: ...


def optionable(symbol: str) -> bool:
    """A plain ticker that can be an OCC root (not ``BTC/USDT`` or ``ES1!``)."""
    return 0 < len(symbol) <= 6 and symbol.isascii() and symbol.isalpha() and symbol.isupper()


class SimOptions:
    def __init__(self, model: UnderlyingModel, seed: int) -> None:
        self.model = model
        self.seed = seed
        self._series: OrderedDict[tuple[str, date, int], Series] = OrderedDict()

    # -- listing ----------------------------------------------------------------------
    def _instrument(self, symbol: str) -> Instrument:
        inst = self.model.instruments.get(symbol)
        if inst is None or not optionable(symbol):
            raise NoOptionsError(f"simulated feed lists no options for {symbol!r}")
        return inst

    def expirations(self, symbol: str, now: float) -> list[date]:
        self._instrument(symbol)
        return [x.expiration for x in listings(now, symbol)]

    def _listing(self, symbol: str, expiration: date, now: float) -> Listing | None:
        return next((x for x in listings(now, symbol) if x.expiration == expiration), None)

    def series(self, symbol: str, listing: Listing, now: float) -> Series:
        """The contracts of one expiration on the day of ``now`` (cached per day)."""
        today = int(now // DAY)
        key = (symbol, listing.expiration, today)
        found = self._series.get(key)
        if found is None:
            inst = self._instrument(symbol)
            listed = (listing.listed - EPOCH).days  # the day number of the listing day
            first = min(listed, today - 1)
            reference, _ = self.model.close_range(symbol, first, first)
            low, high = self.model.close_range(symbol, first, today - 1)
            strikes = strike_grid(reference, low, high, fund=inst.type == "fund")
            found = Series.build(self.seed, symbol, listing, strikes, today)
            self._series[key] = found
            while len(self._series) > SERIES_CACHE:
                self._series.popitem(last=False)
        return found

    # -- pricing ------------------------------------------------------------------------
    def _underlying(self, inst: Instrument, now: float) -> Underlying:
        quote = self.model.quote_at(inst.symbol, now)
        return Underlying(
            symbol=inst.symbol,
            price=quote.last,
            vol=inst.annual_vol,
            daily_volume=inst.daily_volume,
            fund=inst.type == "fund",
            traded=min(1.0, quote.volume / max(inst.daily_volume, 1)),
        )

    def chain(self, symbol: str, expiration: date, now: float) -> OptionChain:
        inst = self._instrument(symbol)
        listing = self._listing(symbol, expiration, now)
        if listing is None:
            raise NoOptionsError(
                f"simulated feed: {symbol} has no expiration {expiration.isoformat()} listed "
                f"on {new_york_date(now).isoformat()}"
            )
        model = OptionModel(self._underlying(inst, now), listing, now)
        return model.chain(self.series(symbol, listing, now))

    def _contract(self, symbol: str, now: float) -> tuple[Instrument, Listing, Contract] | None:
        """A listed OCC contract at ``now`` with its underlying and expiration; else None."""
        if not is_occ(symbol):
            return None
        try:
            occ = parse_occ(symbol)
        except ValueError:
            return None
        inst = self.model.instruments.get(occ.underlying)
        if inst is None or not optionable(occ.underlying):
            return None
        listing = self._listing(occ.underlying, occ.expiry, now)
        if listing is None:
            return None
        contract = self.series(occ.underlying, listing, now).by_symbol.get(format_occ(occ))
        return None if contract is None else (inst, listing, contract)

    def quote(self, symbol: str, now: float) -> Quote | None:
        """A listed contract's quote at ``now`` (same prices as its chain); None otherwise."""
        found = self._contract(symbol, now)
        if found is None:
            return None
        inst, listing, contract = found
        quote = OptionModel(self._underlying(inst, now), listing, now).quote(contract)
        return quote if quote.symbol == symbol else quote.model_copy(update={"symbol": symbol})

    def info(self, symbol: str, now: float) -> SymbolInfo | None:
        """SymbolInfo of a listed contract (the webhook and quote routes resolve symbols)."""
        found = self._contract(symbol, now)
        if found is None:
            return None
        inst, _, contract = found
        occ = parse_occ(contract.symbol)
        strike = f"{occ.strike.normalize():f}"
        return SymbolInfo(
            symbol=symbol,
            description=(
                f"{occ.underlying} {occ.expiry:%b} {occ.expiry.day} {occ.expiry.year} "
                f"${strike} {occ.right.value.title()} (simulated)"
            ),
            exchange="OPRA",
            type="option",
            sector=inst.sector,
        )
