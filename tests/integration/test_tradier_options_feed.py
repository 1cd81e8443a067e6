"""TradierFeed's option expirations and chains against a local server speaking Tradier's API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from app.feeds.base import NoOptionsError
from app.feeds.tradier import TradierFeed
from app.models.occ import OptionRight
from app.retry import RetryPolicy
from tests.fakes.tradier_server import FakeTradier, bs_row, tradier_option, tradier_quote

FAST = RetryPolicy(attempts=2, total_timeout=5.0, wait_initial=0.01, wait_max=0.02)
DEC18 = date(2026, 12, 18)
JAN15 = date(2027, 1, 15)
NOW = 1_765_200_000.0
UPDATED = "2026-12-07 17:59:59"
UPDATED_EPOCH = datetime(2026, 12, 7, 17, 59, 59, tzinfo=UTC).timestamp()


@pytest.fixture
async def fake() -> AsyncIterator[FakeTradier]:
    server = FakeTradier()
    server.quotes = {"SPY": tradier_quote("SPY", 600.0, type="etf")}
    server.list_options("SPY", 600.0, {DEC18: 11 / 365, JAN15: 39 / 365}, [590, 595, 600, 605, 610])
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def feed(fake: FakeTradier) -> AsyncIterator[TradierFeed]:
    f = TradierFeed(fake.token, fake.base_url, fake.stream_url, 2.0, retry=FAST, clock=lambda: NOW)
    await f.start()
    yield f
    await f.close()


async def test_expirations_ask_for_every_root_and_come_back_as_dates(
    fake: FakeTradier, feed: TradierFeed
) -> None:
    assert await feed.expirations("spy") == [DEC18, JAN15]
    (call,) = fake.calls("/markets/options/expirations")
    assert call.query == {"symbol": "SPY", "includeAllRoots": "true"}


async def test_a_single_expiration_arrives_as_a_bare_string(
    fake: FakeTradier, feed: TradierFeed
) -> None:
    fake.option_expirations["SPY"] = ["2026-12-18"]
    assert await feed.expirations("SPY") == [DEC18]


@pytest.mark.parametrize("empty", [None, "null"])
async def test_no_options_is_a_clear_denial(
    fake: FakeTradier, feed: TradierFeed, empty: object
) -> None:
    fake.options_empty = empty
    with pytest.raises(NoOptionsError, match="no options for AAPL"):
        await feed.expirations("AAPL")
    with pytest.raises(NoOptionsError, match="no SPY options expiring 2027-03-19"):
        await feed.chain("SPY", date(2027, 3, 19))


async def test_chain_has_quotes_greeks_and_the_underlying_price(
    fake: FakeTradier, feed: TradierFeed
) -> None:
    chain = await feed.chain("SPY", DEC18)
    (call,) = fake.calls("/markets/options/chains")
    assert call.query == {"symbol": "SPY", "expiration": "2026-12-18", "greeks": "true"}
    assert chain.underlying == "SPY" and chain.expiration == DEC18
    assert chain.underlying_price == 600.0
    assert chain.fetched_at == NOW
    assert len(chain) == 10
    assert [q.right for q in chain][:5] == [OptionRight.CALL] * 5  # calls, then puts
    assert chain.strikes() == [Decimal(k) for k in (590, 595, 600, 605, 610)]
    atm = chain.get("SPY261218C00600000")
    assert atm is not None
    expected = bs_row("call", 600.0, 600.0, 11 / 365, 0.25, 0.04)
    assert atm.delta == pytest.approx(expected["delta"])
    assert atm.gamma == pytest.approx(expected["gamma"])
    assert atm.theta == pytest.approx(expected["theta"])
    assert atm.vega == pytest.approx(expected["vega"])
    assert atm.iv == 0.25
    assert atm.greeks_time == UPDATED_EPOCH  # updated_at is a UTC wall time
    assert atm.bid is not None and atm.ask is not None and atm.bid < atm.ask
    row = next(r for r in fake.option_chains[("SPY", "2026-12-18")] if r["symbol"] == atm.symbol)
    assert (atm.bid, atm.ask, atm.last) == (row["bid"], row["ask"], row["last"])
    assert (atm.open_interest, atm.volume) == (row["open_interest"], row["volume"])
    assert chain.greeks_time == UPDATED_EPOCH


async def test_a_one_contract_chain_arrives_as_a_bare_object(
    fake: FakeTradier, feed: TradierFeed
) -> None:
    row = tradier_option("SPY", DEC18, "put", 600.0, spot=600.0, years=11 / 365)
    fake.option_chains[("SPY", "2026-12-18")] = [row]
    chain = await feed.chain("SPY", DEC18)
    assert [q.symbol for q in chain] == ["SPY261218P00600000"]
    assert chain.quotes[0].right is OptionRight.PUT
    assert chain.quotes[0].delta is not None and -1 < chain.quotes[0].delta < 0


async def test_greeks_null_or_missing_leave_the_quote_without_greeks(
    fake: FakeTradier, feed: TradierFeed
) -> None:
    rows = fake.option_chains[("SPY", "2026-12-18")]
    rows[0]["greeks"] = None
    del rows[1]["greeks"]
    rows[2]["greeks"] = {"delta": 0.4, "updated_at": None}  # partial
    chain = await feed.chain("SPY", DEC18)
    first, second, third = chain.side(OptionRight.CALL)[:3]
    for q in (first, second):
        assert (q.delta, q.gamma, q.theta, q.vega, q.iv, q.greeks_time) == (None,) * 6
        assert q.bid is not None  # the quote itself is still there
    assert third.delta == 0.4 and third.gamma is None and third.greeks_time is None
    assert chain.greeks_time == UPDATED_EPOCH  # the rest still carry theirs


async def test_numbers_as_strings_are_read_as_numbers(fake: FakeTradier, feed: TradierFeed) -> None:
    row = tradier_option("SPY", DEC18, "call", 600.0, spot=600.0, years=11 / 365)
    for key in ("bid", "ask", "last", "volume", "open_interest", "strike"):
        row[key] = str(row[key])
    row["greeks"] = {k: str(v) for k, v in row["greeks"].items()}
    row["greeks"]["mid_iv"] = "0"  # ORATS' "no mid": fall back to its smoothed volatility
    row["greeks"]["smv_vol"] = "0.31"
    fake.option_chains[("SPY", "2026-12-18")] = [row]
    (q,) = (await feed.chain("SPY", DEC18)).quotes
    assert isinstance(q.bid, float) and isinstance(q.volume, int)
    assert q.strike == Decimal(600)
    assert q.iv == 0.31
    assert q.delta == pytest.approx(float(row["greeks"]["delta"]))
    assert q.greeks_time == UPDATED_EPOCH


async def test_option_symbols_are_quoted_like_stocks(fake: FakeTradier, feed: TradierFeed) -> None:
    row = tradier_option("SPY", DEC18, "call", 600.0, spot=600.0, years=11 / 365)
    fake.quotes[row["symbol"]] = row
    quotes = await feed.quotes(["SPY261218C00600000", "SPY261218C00999000", "SPY"])
    assert set(quotes) == {"SPY261218C00600000", "SPY"}  # unknown contracts are absent
    q = quotes["SPY261218C00600000"]
    assert (q.bid, q.ask, q.last) == (row["bid"], row["ask"], row["last"])


async def test_a_bad_symbol_is_denied_without_a_request(
    fake: FakeTradier, feed: TradierFeed
) -> None:
    with pytest.raises(NoOptionsError):
        await feed.expirations("not a symbol!")
    assert fake.calls("/markets/options/expirations") == []
