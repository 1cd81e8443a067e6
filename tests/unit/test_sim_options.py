"""The simulated feed's option chains: listing calendar, strikes, prices, greeks, OCC quotes."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from app.feeds.base import NoOptionsError
from app.feeds.sim_listing import strike_steps, third_friday
from app.feeds.sim_options import RATE, YEAR
from app.feeds.simulated import SimulatedFeed
from app.models.market import Resolution
from app.models.occ import OptionRight, parse_occ
from app.options.chain import OptionChain
from app.sessions import get_sessions

# Monday 2027-03-22, 11:00 New York: Good Friday (2027-03-26) is an XNYS holiday.
NOW = datetime(2027, 3, 22, 15, 0, tzinfo=UTC).timestamp()
GOOD_FRIDAY = date(2027, 3, 26)
UNIVERSE = ["SPY", "QQQ", "AAPL", "TSLA", "XLF", "BINANCE:BTCUSDT"]


def feed(seed: int = 42, now: float = NOW) -> SimulatedFeed:
    return SimulatedFeed(UNIVERSE, seed=seed, clock=lambda: now)


async def monthly_chain(f: SimulatedFeed, symbol: str) -> OptionChain:
    """The chain of the front monthly (third Friday) expiration at least a week out."""
    expiry = next(
        d for d in await f.expirations(symbol) if d >= date(2027, 4, 1) and d.day in range(15, 22)
    )
    return await f.chain(symbol, expiry)


# -- listing ----------------------------------------------------------------------------
async def test_a_holiday_friday_expires_the_session_before() -> None:
    expirations = await feed().expirations("AAPL")
    assert GOOD_FRIDAY not in expirations
    assert date(2027, 3, 25) in expirations  # the weekly moves to Thursday
    xnys = get_sessions("XNYS")
    assert all(xnys.is_session(d) for d in expirations)
    assert expirations == sorted(set(expirations))


async def test_weeklies_for_eight_weeks_monthlies_for_a_year() -> None:
    expirations = set(await feed().expirations("AAPL"))
    fridays = [date(2027, 3, 26) + timedelta(weeks=i) for i in range(1, 8)]
    assert set(fridays) <= expirations
    xnys = get_sessions("XNYS")
    monthlies = []
    for i in range(11):
        day = third_friday(2027 + (3 + i) // 12, (3 + i) % 12 + 1)
        while not xnys.is_session(day):  # Juneteenth 2027 is observed on Friday 18 June
            day -= timedelta(days=1)
        monthlies.append(day)
    assert date(2027, 6, 17) in monthlies
    assert set(monthlies) <= expirations
    assert max(expirations) <= date(2028, 3, 22)
    # no weekly beyond 8 weeks that is not a monthly
    late = [d for d in expirations if d > date(2027, 5, 20)]
    assert all(d.day in range(15, 22) for d in late)


async def test_index_etfs_list_dailies_for_the_next_week() -> None:
    spy = await feed().expirations("SPY")
    # Monday to the next Monday; Good Friday is no session, so no daily that day
    assert [d for d in spy if d <= date(2027, 3, 29)] == [
        date(2027, 3, 22),
        date(2027, 3, 23),
        date(2027, 3, 24),
        date(2027, 3, 25),
        date(2027, 3, 29),
    ]
    aapl = await feed().expirations("AAPL")
    assert date(2027, 3, 23) in spy and date(2027, 3, 23) not in aapl


async def test_an_expiration_is_listed_until_its_close() -> None:
    before = datetime(2027, 3, 25, 19, 59, tzinfo=UTC).timestamp()  # 15:59 New York (EDT)
    after = datetime(2027, 3, 25, 20, 1, tzinfo=UTC).timestamp()
    assert date(2027, 3, 25) in await feed(now=before).expirations("AAPL")
    assert date(2027, 3, 25) not in await feed(now=after).expirations("AAPL")


async def test_no_options_for_unknown_or_non_equity_symbols() -> None:
    f = feed()
    with pytest.raises(NoOptionsError):
        await f.expirations("ZZZZ")
    with pytest.raises(NoOptionsError):
        await f.expirations("BINANCE:BTCUSDT")
    with pytest.raises(NoOptionsError, match="no expiration 2027-03-24"):
        await f.chain("AAPL", date(2027, 3, 24))  # a Wednesday: SPY lists it, AAPL does not


# -- strikes ----------------------------------------------------------------------------
@pytest.mark.parametrize("symbol", ["SPY", "AAPL", "TSLA", "XLF"])
async def test_strikes_sit_on_the_listed_grid_around_the_price(symbol: str) -> None:
    f = feed()
    chain = await monthly_chain(f, symbol)
    spot = chain.underlying_price
    assert spot is not None
    strikes = chain.strikes()
    fund = f.instruments[symbol].type == "fund"
    near = [k for k in strikes if abs(float(k) / spot - 1) < 0.05]
    fine = near[1] - near[0]
    assert len(near) >= 3 and all(b - a == fine for a, b in itertools.pairwise(near))
    # the steps of the price level on the listing day (the price has moved since)
    levels = {strike_steps(spot * x / 10, fund) for x in range(5, 16)}
    coarse = next(c for f_, c in levels if f_ == fine)
    assert all(k % fine == 0 or k % coarse == 0 for k in strikes)
    assert float(strikes[0]) <= spot * 0.75 and float(strikes[-1]) >= spot * 1.25
    assert chain.strikes(OptionRight.CALL) == chain.strikes(OptionRight.PUT) == strikes


async def test_strikes_do_not_move_with_the_price_during_the_day() -> None:
    later = NOW + 4 * 3600
    a = await monthly_chain(feed(), "TSLA")
    b = await monthly_chain(feed(now=later), "TSLA")
    assert a.underlying_price != b.underlying_price
    assert a.strikes() == b.strikes()


# -- prices and greeks ------------------------------------------------------------------
async def test_put_call_parity_holds_within_the_spread() -> None:
    f = feed()
    chain = await monthly_chain(f, "SPY")
    spot = chain.underlying_price
    assert spot is not None
    close = get_sessions("XNYS").session(chain.expiration)
    assert close is not None
    years = (close.close.timestamp() - NOW) / YEAR
    checked = 0
    for k in chain.strikes():
        call = chain.get(f"SPY{chain.expiration:%y%m%d}C{int(k * 1000):08d}")
        put = chain.get(f"SPY{chain.expiration:%y%m%d}P{int(k * 1000):08d}")
        assert call is not None and put is not None
        assert call.mid is not None and put.mid is not None
        assert call.width is not None and put.width is not None
        if call.bid == 0 or put.bid == 0:
            continue  # a one-sided market says little about the theoretical price
        parity = spot - float(k) * math.exp(-RATE * years)
        assert call.mid - put.mid == pytest.approx(parity, abs=(call.width + put.width) / 2 + 0.01)
        checked += 1
    assert checked > 20


async def test_greeks_have_the_right_signs_and_order() -> None:
    chain = await monthly_chain(feed(), "AAPL")
    calls, puts = chain.side(OptionRight.CALL), chain.side(OptionRight.PUT)
    deltas = [c.delta for c in calls]
    assert all(d is not None and 0 < d < 1 for d in deltas)
    assert all(a > b for a, b in itertools.pairwise(deltas))  # type: ignore[operator]
    lasts = [c.last for c in calls]  # no arbitrage: calls cheapen as the strike rises
    assert all(a >= b for a, b in itertools.pairwise(lasts))  # type: ignore[operator]
    assert all(p.delta is not None and -1 < p.delta < 0 for p in puts)
    for q in calls + puts:
        assert q.gamma is not None and q.gamma >= 0
        assert q.vega is not None and q.vega >= 0
        assert q.greeks_time == NOW
    atm = min(calls, key=lambda c: abs(float(c.strike) - (chain.underlying_price or 0)))
    assert atm.theta is not None and atm.theta < 0
    assert atm.delta is not None and 0.4 < atm.delta < 0.65


async def test_puts_below_the_money_carry_a_higher_implied_volatility() -> None:
    chain = await monthly_chain(feed(), "SPY")
    spot = chain.underlying_price
    assert spot is not None
    puts = chain.side(OptionRight.PUT)

    def iv_near(level: float) -> float:
        q = min(puts, key=lambda p: abs(float(p.strike) - level))
        assert q.iv is not None
        return q.iv

    assert iv_near(spot * 0.85) > iv_near(spot * 0.95) > iv_near(spot) > iv_near(spot * 1.05)


async def test_markets_are_on_the_tick_and_never_crossed() -> None:
    chain = await monthly_chain(feed(), "TSLA")
    for q in chain:
        assert q.bid is not None and q.ask is not None and q.last is not None
        assert 0 <= q.bid < q.ask and q.ask >= 0.01
        assert q.bid <= q.last <= q.ask
        for price in (q.bid, q.ask, q.last):
            assert round(price, 2) == price
    far = chain.side(OptionRight.CALL)[-1]  # far out of the money: no bid, one tick offer
    assert far.bid == 0.0 and far.ask is not None and far.ask <= 0.05
    atm = min(chain.side(OptionRight.CALL), key=lambda c: abs(c.delta - 0.5))  # type: ignore[operator]
    deep = chain.side(OptionRight.CALL)[0]
    assert atm.width is not None and deep.width is not None and deep.width > atm.width


async def test_open_interest_peaks_near_the_money() -> None:
    chain = await monthly_chain(feed(), "SPY")
    spot = chain.underlying_price
    assert spot is not None
    calls = chain.side(OptionRight.CALL)
    busiest = max(calls, key=lambda c: c.open_interest)
    assert abs(float(busiest.strike) / spot - 1) < 0.05
    assert calls[0].open_interest < busiest.open_interest / 10
    assert all(q.volume >= 0 for q in chain)


async def test_same_seed_and_time_give_the_same_chain() -> None:
    a = await monthly_chain(feed(), "AAPL")
    b = await monthly_chain(feed(), "AAPL")
    c = await monthly_chain(feed(seed=7), "AAPL")
    assert a == b
    assert [q.bid for q in a] != [q.bid for q in c]


# -- OCC contracts through the quote surfaces ---------------------------------------------
async def test_option_quotes_agree_with_the_chain() -> None:
    f = feed()
    chain = await monthly_chain(f, "SPY")
    picked = chain.side(OptionRight.PUT)[::15]
    quotes = await f.quotes([q.symbol for q in picked] + ["SPY"])
    assert set(quotes) == {q.symbol for q in picked} | {"SPY"}
    for q in picked:
        quote = quotes[q.symbol]
        assert (quote.bid, quote.ask, quote.last) == (q.bid, q.ask, q.last)
        assert quote.time == pytest.approx(NOW)


async def test_unlisted_and_expired_contracts_are_absent() -> None:
    f = feed()
    chain = await monthly_chain(f, "AAPL")
    listed = chain.quotes[3].symbol
    contract = parse_occ(listed)
    off_grid = listed[:-8] + f"{int(contract.strike * 1000) + 10:08d}"  # strike + 0.01
    expired = "AAPL270319C00200000"  # the March monthly expired before NOW
    quotes = await f.quotes([listed, off_grid, expired, "ZZZZ270416C00100000", "AAPL"])
    assert set(quotes) == {listed, "AAPL"}
    assert await f.resolve(off_grid) is None and await f.resolve(expired) is None
    info = await f.resolve(listed)
    assert info is not None and info.type == "option" and info.symbol == listed


async def test_the_stream_carries_option_contracts() -> None:
    f = feed()
    chain = await monthly_chain(f, "QQQ")
    symbol = chain.quotes[len(chain) // 4].symbol
    stream = f.stream(["QQQ", symbol, "QQQ270319C00500000"])
    batch = await anext(stream)
    await stream.aclose()
    by_symbol = {q.symbol: q for q in batch}
    assert set(by_symbol) == {"QQQ", symbol}
    contract = chain.get(symbol)
    assert contract is not None and by_symbol[symbol].ask == contract.ask


async def test_options_have_no_bars() -> None:
    f = feed()
    symbol = (await monthly_chain(f, "SPY")).quotes[0].symbol
    history = await f.history(symbol, Resolution.D1, int(NOW) - 10 * 86_400, int(NOW))
    assert history.bars == []


def test_strike_steps_follow_the_price_level() -> None:
    assert strike_steps(600.0, fund=True) == (Decimal(1), Decimal(5))
    assert strike_steps(40.0, fund=True) == (Decimal("0.5"), Decimal(1))
    assert strike_steps(20.0, fund=False) == (Decimal("0.5"), Decimal(1))
    assert strike_steps(250.0, fund=False) == (Decimal("2.5"), Decimal(5))
    assert strike_steps(800.0, fund=False) == (Decimal(5), Decimal(10))
