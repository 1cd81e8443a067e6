"""A simulated feed with a small, fixed option chain: what the options API and console
tests inject as the datahub's feed (``create_app(settings, feed=...)``), and a stored book
and order holding a spread of it (for a datahub that runs no engine).

SPY lists three expirations (2, 9 and 30 days out) with strikes 490-510 in steps of 5
around an underlying of 500.00; every other symbol lists none. ``down = True`` makes the
option calls fail as an unreachable upstream does; ``calls`` counts the feed's answers.
At 9 days out the 500 call's mid is 3.45 (delta 0.5), the 505 call's 2.95 (delta 0.25),
the 495 put's 2.95 (delta -0.25).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal

from redis.asyncio import Redis

from app.execution.store import ExecutionStore
from app.feeds.base import FeedError, NoOptionsError
from app.feeds.simulated import SimulatedFeed
from app.models.instruments import multiplier_of
from app.models.occ import OccSymbol, OptionRight, expiry_date, format_occ
from app.models.orders import (
    Fill,
    Intent,
    Order,
    OrderLeg,
    OrderRequest,
    OrderStatus,
    OrderType,
)
from app.options.chain import OptionChain, OptionQuote
from app.portfolio.book import AccountBook

UNDERLYING = "SPY"
SPOT = 500.0
STRIKES = tuple(Decimal(k) for k in range(490, 515, 5))
# one "today" for the whole test session, in New York as expiries are: the stored spread's
# contracts (made at import) and the listing (asked later) must not straddle a midnight
TODAY = expiry_date()
DAYS_OUT = (2, 9, 30)
GREEKS_AGE = 120.0  # the greeks are this many seconds old when the chain is made


def listed(today: date | None = None) -> list[date]:
    today = today or TODAY
    return [today + timedelta(days=d) for d in DAYS_OUT]


def quote(expiration: date, right: OptionRight, strike: Decimal, greeks_time: float) -> OptionQuote:
    """Plausible figures: intrinsic plus a little time value, delta by moneyness."""
    k = float(strike)
    intrinsic = max(0.0, SPOT - k) if right is OptionRight.CALL else max(0.0, k - SPOT)
    time_value = 3.0 - 0.1 * abs(SPOT - k) + 0.05 * (expiration - TODAY).days
    value = round(intrinsic + time_value, 2)
    moneyness = (SPOT - k) / 20 if right is OptionRight.CALL else (k - SPOT) / 20
    delta = round(min(0.95, max(0.05, 0.5 + moneyness)), 3)
    return OptionQuote.of(
        UNDERLYING,
        expiration,
        right,
        strike,
        bid=round(value - 0.05, 2),
        ask=round(value + 0.05, 2),
        last=value,
        volume=int(1000 - abs(SPOT - k) * 10),
        open_interest=int(5000 - abs(SPOT - k) * 50),
        delta=delta if right is OptionRight.CALL else -delta,
        gamma=0.02,
        theta=-0.15,
        vega=0.3,
        iv=0.2 + abs(SPOT - k) / 1000,
        greeks_time=greeks_time,
    )


def make_chain(expiration: date, now: float | None = None) -> OptionChain:
    now = time.time() if now is None else now
    quotes = tuple(
        quote(expiration, right, k, now - GREEKS_AGE)
        for right in (OptionRight.CALL, OptionRight.PUT)
        for k in STRIKES
    )
    return OptionChain(UNDERLYING, expiration, SPOT, quotes, fetched_at=now)


class ChainFeed(SimulatedFeed):
    """The simulated feed's quotes and bars, and a fixed chain for SPY."""

    def __init__(self, symbols: Sequence[str], **kw: object) -> None:
        super().__init__(symbols, **kw)  # type: ignore[arg-type]
        self.down = False
        self.calls: list[tuple[str, str]] = []

    def _check(self, op: str, symbol: str) -> None:
        self.calls.append((op, symbol))
        if self.down:
            raise FeedError("upstream timed out (test)")
        if symbol != UNDERLYING:
            raise NoOptionsError(f"no options for {symbol}")

    async def expirations(self, symbol: str) -> list[date]:
        self._check("expirations", symbol)
        return listed()

    async def chain(self, symbol: str, expiration: date) -> OptionChain:
        self._check("chain", symbol)
        if expiration not in listed():
            raise NoOptionsError(f"{symbol} lists no {expiration}")
        return make_chain(expiration)


# -- a stored spread -------------------------------------------------------------------
def contract(right: OptionRight, strike: int, days_out: int = 9) -> str:
    expiry = TODAY + timedelta(days=days_out)
    return format_occ(OccSymbol(UNDERLYING, expiry, right, Decimal(strike)))


CALL_500 = contract(OptionRight.CALL, 500)
CALL_505 = contract(OptionRight.CALL, 505)
PUT_495 = contract(OptionRight.PUT, 495)

#: (strategy, symbol, intent, quantity, price): a 500/505 call vertical bought for 0.40
#: net (strategy "vertical", with 10 AAPL shares beside it) and a 495 put ("hedge").
FILLS = (
    ("vertical", CALL_500, Intent.BUY, 2, 3.00),
    ("vertical", CALL_505, Intent.SELL_SHORT, 2, 2.60),
    ("vertical", "AAPL", Intent.BUY, 10, 150.0),
    ("hedge", PUT_495, Intent.BUY, 1, 3.10),
)


async def seed_options_book(redis: Redis, account: str = "default") -> AccountBook:
    """Store a book holding the spread above (unfenced: no engine holds the account) and
    the vertical's order, one request with two legs."""
    book = AccountBook(account=account, cash=100_000.0, multiplier_of=multiplier_of)
    now = time.time()
    for i, (strategy, symbol, intent, quantity, price) in enumerate(FILLS):
        book.apply_fill(
            Fill(
                id=f"seed-fill-{i}",
                order_id="seed-vertical",
                broker="paper",
                account=account,
                symbol=symbol,
                intent=intent,
                quantity=quantity,
                price=price,
                time=now,
                strategy=strategy,
            )
        )
    store = ExecutionStore(redis, account)
    await store.save_book(book)
    request = OrderRequest(
        client_order_id="seed-vertical",
        symbol=UNDERLYING,
        intent=Intent.BUY,
        quantity=2,
        order_type=OrderType.LIMIT,
        limit_price=0.40,
        strategy="vertical",
        legs=(
            OrderLeg(symbol=CALL_500, intent=Intent.BUY),
            OrderLeg(symbol=CALL_505, intent=Intent.SELL_SHORT),
        ),
        net="debit",
    )
    placed = Order(
        id="seed-vertical",
        broker="paper",
        account=account,
        request=request,
        created_at=now,
        updated_at=now,
    )
    await store.save_order(placed)  # (a new order is indexed; its transitions follow)
    filled = placed.model_copy(
        update={
            "status": OrderStatus.FILLED,
            "filled_quantity": 2,
            "avg_fill_price": 0.40,
            "leg_fills": {CALL_500: [2, 3.00], CALL_505: [2, 2.60]},
        }
    )
    await store.save_order(filled)
    return book
