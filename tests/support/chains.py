"""A small deterministic option chain feed for tests (an oracle: simple, not Black-Scholes).

Underlying 600; strikes 560-640 by 5; two expiries; call delta falls linearly with the
strike, put delta = call delta - 1; prices are intrinsic plus a time value that decays
away from the money, with a 0.10 wide market.
"""

from __future__ import annotations

import math
import time
from datetime import date, timedelta
from decimal import Decimal

from app.feeds.base import NoOptionsError
from app.models.market import Quote
from app.models.occ import OptionRight, expiry_date
from app.options.chain import OptionChain, OptionQuote


class FakeChains:
    name = "fake-chains"

    def __init__(self, underlying: str = "SPY", price: float = 600.0, today: date | None = None):
        self.underlying = underlying
        self.price = price
        today = today or expiry_date()
        self.listed = [today + timedelta(days=d) for d in (7, 30, 60)]
        self.fetches = 0

    async def expirations(self, symbol: str) -> list[date]:
        if symbol != self.underlying:
            raise NoOptionsError(f"no options listed for {symbol}")
        return list(self.listed)

    def contract(self, expiration: date, right: OptionRight, strike: int) -> OptionQuote:
        s = self.price
        call_delta = min(0.98, max(0.02, 0.5 - (strike - s) / 100))
        delta = call_delta if right is OptionRight.CALL else call_delta - 1
        intrinsic = max(0.0, s - strike) if right is OptionRight.CALL else max(0.0, strike - s)
        mid = round(intrinsic + 8 * math.exp(-abs(strike - s) / 25), 2)
        return OptionQuote.of(
            self.underlying,
            expiration,
            right,
            Decimal(strike),
            bid=round(mid - 0.05, 2),
            ask=round(mid + 0.05, 2),
            last=mid,
            volume=100,
            open_interest=1000,
            delta=round(delta, 4),
            greeks_time=time.time() - 60,
        )

    async def chain(self, symbol: str, expiration: date) -> OptionChain:
        if symbol != self.underlying or expiration not in self.listed:
            raise NoOptionsError(f"{symbol} {expiration} not listed")
        self.fetches += 1
        quotes = tuple(
            self.contract(expiration, right, k)
            for right in (OptionRight.CALL, OptionRight.PUT)
            for k in range(560, 645, 5)
        )
        return OptionChain(self.underlying, expiration, self.price, quotes, time.time())

    def quote(self, symbol: str) -> Quote | None:
        """The contract's quote as the paper broker sees it."""
        for expiration in self.listed:
            for right in (OptionRight.CALL, OptionRight.PUT):
                for k in range(560, 645, 5):
                    q = self.contract(expiration, right, k)
                    if q.symbol == symbol:
                        assert q.bid is not None and q.ask is not None and q.last is not None
                        return Quote(
                            symbol=symbol, time=time.time(), last=q.last, bid=q.bid, ask=q.ask
                        )
        return None
