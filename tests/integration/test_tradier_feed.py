"""TradierFeed against a local server speaking Tradier's API (quirks, quotas, faults, stream)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import suppress
from datetime import UTC, date, datetime, timedelta

import aiohttp
import pytest

from app.config import Settings
from app.feeds.base import Feed, FeedError
from app.feeds.tradier import TradierFeed
from app.models.market import Quote, Resolution
from app.observability.metrics import FEED_ERRORS
from app.retry import RetryPolicy
from app.tradier.client import TradierError
from tests.fakes.tradier_server import (
    FakeTradier,
    history_rows,
    timesales_rows,
    tradier_quote,
    utc_midnight,
)
from tests.support.metrics import sample

FAST = RetryPolicy(
    attempts=3,
    total_timeout=5.0,
    wait_initial=0.01,
    wait_max=0.05,
    wait_jitter=0.01,
    retry_after_max=3.0,
)
SESSION_OPEN = int(datetime(2024, 3, 12, 13, 30, tzinfo=UTC).timestamp())  # 09:30 EDT


@pytest.fixture
async def fake() -> AsyncIterator[FakeTradier]:
    server = FakeTradier()
    server.quotes = {
        "AAPL": tradier_quote("AAPL", 101.5),
        "SPY": tradier_quote(
            "SPY", 510.25, description="SPDR S&P 500 ETF Trust", exch="P", type="etf"
        ),
    }
    await server.start()
    yield server
    await server.close()


def make_feed(fake: FakeTradier, *, token: str | None = None, timeout: float = 2.0) -> TradierFeed:
    return TradierFeed(
        token or fake.token,
        fake.base_url,
        fake.stream_url,
        timeout,
        ["AAPL", "SPY"],
        retry=FAST,
        stream_heartbeat=5.0,
    )


@pytest.fixture
async def feed(fake: FakeTradier) -> AsyncIterator[TradierFeed]:
    f = make_feed(fake)
    await f.start()
    yield f
    await f.close()


def errors(op: str) -> float:
    return sample(FEED_ERRORS, feed="tradier", op=op)


# -- protocol and headers --------------------------------------------------------------
def test_tradier_feed_implements_the_feed_protocol(fake: FakeTradier) -> None:
    assert isinstance(make_feed(fake), Feed)
    assert TradierFeed.name == "tradier"


def test_from_settings_uses_the_tradier_settings() -> None:
    settings = Settings(
        feed="tradier",
        tradier_token="secret-token",
        tradier_base_url="https://sandbox.tradier.com/v1",
        tradier_timeout_seconds=3.5,
        symbols=["aapl"],
        _env_file=None,
    )
    feed = TradierFeed.from_settings(settings)
    assert feed.client.base_url == "https://sandbox.tradier.com/v1"
    assert feed.client.timeout == 3.5
    assert feed.symbols == ["AAPL"]
    assert "secret-token" not in repr(feed) + repr(feed.client)


async def test_fake_answers_xml_without_the_accept_header(fake: FakeTradier) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{fake.base_url}/markets/quotes",
            params={"symbols": "AAPL"},
            headers={"Authorization": f"Bearer {fake.token}"},
        ) as resp,
    ):
        assert resp.content_type == "application/xml"
        assert (await resp.text()).startswith("<?xml")


async def test_every_call_sends_the_token_and_asks_for_json(
    fake: FakeTradier, feed: TradierFeed
) -> None:
    fake.securities = [
        {"symbol": "AAPL", "exchange": "Q", "type": "stock", "description": "Apple Inc"}
    ]
    await feed.quotes(["AAPL"])
    await feed.resolve("AAPL")
    await feed.history("AAPL", Resolution.D1, 0, 86_400 * 10)
    await feed.ping()
    assert len(fake.requests) >= 4
    for call in fake.requests:
        assert call.headers["Accept"] == "application/json"
        assert call.headers["Authorization"] == f"Bearer {fake.token}"
        assert call.status == 200


async def test_bad_token_fails_at_once_with_a_clear_error(fake: FakeTradier) -> None:
    feed = make_feed(fake, token="wrong")
    try:
        with pytest.raises(FeedError, match=r"Tradier rejected the token \(401\)"):
            await feed.quotes(["AAPL"])
    finally:
        await feed.close()
    assert len(fake.calls("/markets/quotes")) == 1  # never retried


# -- quotes ------------------------------------------------------------------------------
async def test_one_quote_comes_back_as_an_object(fake: FakeTradier, feed: TradierFeed) -> None:
    quotes = await feed.quotes(["aapl"])
    assert list(quotes) == ["AAPL"]
    q = quotes["AAPL"]
    assert (q.last, q.bid, q.ask, q.bid_size, q.ask_size) == (101.5, 101.49, 101.51, 3, 5)
    assert (q.open, q.high, q.low, q.prev_close, q.volume) == (
        99.5,
        101.25,
        98.75,
        100.0,
        1_234_567,
    )
    assert (q.change, q.change_pct) == (1.5, 1.5)
    assert fake.calls("/markets/quotes")[0].query == {"symbols": "AAPL", "greeks": "false"}


async def test_several_quotes_and_unknown_symbols_absent(
    fake: FakeTradier, feed: TradierFeed
) -> None:
    quotes = await feed.quotes(["AAPL", "SPY", "NOPE"])
    assert set(quotes) == {"AAPL", "SPY"}
    assert quotes["SPY"].last == 510.25
    assert await feed.quotes(["NOPE", "NADA"]) == {}
    assert await feed.quotes([]) == {}


# -- retries and quotas -----------------------------------------------------------------
async def test_429_is_retried_then_succeeds(fake: FakeTradier, feed: TradierFeed) -> None:
    fake.fail("/markets/quotes", 429, body="Quota Violation")
    quotes = await feed.quotes(["AAPL"])
    assert quotes["AAPL"].last == 101.5
    assert [c.status for c in fake.calls("/markets/quotes")] == [429, 200]


async def test_retry_after_on_429_is_honoured(fake: FakeTradier, feed: TradierFeed) -> None:
    fake.fail("/markets/quotes", 429, headers={"Retry-After": "0.4"})
    started = time.monotonic()
    await feed.quotes(["AAPL"])
    assert time.monotonic() - started >= 0.35


async def test_exhausted_quota_waits_for_the_window_to_reset(
    fake: FakeTradier, feed: TradierFeed
) -> None:
    fake.limit(allowed=2, window=0.6)
    started = time.monotonic()
    for _ in range(3):
        assert "AAPL" in await feed.quotes(["AAPL"])
    elapsed = time.monotonic() - started
    statuses = [c.status for c in fake.calls("/markets/quotes")]
    assert statuses == [200, 200, 200]  # waited instead of hitting a 429
    assert elapsed >= 0.4
    assert feed.client.limits["market-data"].allowed == 2


async def test_server_errors_are_retried_then_reported(
    fake: FakeTradier, feed: TradierFeed
) -> None:
    fake.fail("/markets/quotes", 503, times=10, body="Service Unavailable")
    before = errors("quotes")
    with pytest.raises(FeedError, match=r"server error \(503\).*gave up after 3 attempts"):
        await feed.quotes(["AAPL"])
    assert len(fake.calls("/markets/quotes")) == FAST.attempts
    assert errors("quotes") == before + 1


async def test_5xx_once_then_success(fake: FakeTradier, feed: TradierFeed) -> None:
    fake.fail("/markets/quotes", 502)
    assert "AAPL" in await feed.quotes(["AAPL"])


async def test_timeout_is_retried(fake: FakeTradier) -> None:
    feed = make_feed(fake, timeout=0.2)
    fake.fail("/markets/clock", None, delay=0.5)  # first call hangs past the timeout
    try:
        clock = await feed.clock()
    finally:
        await feed.close()
    assert clock.state == "open"
    assert len(fake.calls("/markets/clock")) == 2


async def test_other_4xx_is_not_retried(fake: FakeTradier, feed: TradierFeed) -> None:
    with pytest.raises(TradierError, match=r"\(400\): Invalid interval 2min"):
        await feed.client.get("/markets/timesales", {"symbol": "AAPL", "interval": "2min"})
    assert len(fake.calls("/markets/timesales")) == 1


async def test_non_json_answer_is_a_clear_error(fake: FakeTradier, feed: TradierFeed) -> None:
    fake.fail("/markets/clock", 200, body="<html>maintenance</html>")
    with pytest.raises(FeedError, match="text/plain instead of JSON"):
        await feed.clock()


# -- ping, clock, calendar ------------------------------------------------------------------
async def test_ping_is_a_single_attempt_and_raises_feed_error(
    fake: FakeTradier, feed: TradierFeed
) -> None:
    await feed.ping()
    fake.fail("/markets/clock", 503, times=5)
    with pytest.raises(FeedError, match="503"):
        await feed.ping()
    assert len(fake.calls("/markets/clock")) == 2


async def test_calendar_single_day_and_null(fake: FakeTradier, feed: TradierFeed) -> None:
    fake.calendars[(2024, 7)] = [
        {"date": "2024-07-04", "status": "closed", "description": "Independence Day"}
    ]
    (day,) = await feed.calendar(7, 2024)
    assert (day.date, day.status) == ("2024-07-04", "closed")
    assert await feed.calendar(8, 2024) == []
    assert fake.calls("/markets/calendar")[0].query == {"month": "7", "year": "2024"}


# -- symbols ------------------------------------------------------------------------------
async def test_resolve_and_search_through_lookup(fake: FakeTradier, feed: TradierFeed) -> None:
    fake.securities = [
        {"symbol": "SPY", "exchange": "P", "type": "etf", "description": "SPDR S&P 500 ETF Trust"},
        {
            "symbol": "SPYG",
            "exchange": "P",
            "type": "etf",
            "description": "SPDR Portfolio S&P 500 Growth",
        },
    ]
    info = await feed.resolve("spy")
    assert info is not None and (info.symbol, info.exchange) == ("SPY", "NYSEARCA")
    assert await feed.resolve("SPY") == info
    assert len(fake.calls("/markets/lookup")) == 1  # cached
    assert [i.symbol for i in await feed.search("SPY")] == ["SPY", "SPYG"]  # a list
    assert [i.symbol for i in await feed.search("growth")] == ["SPYG"]  # one object
    assert await feed.search("zzz") == []  # "null"


async def test_resolve_falls_back_to_the_quote_and_returns_none_for_unknown(
    fake: FakeTradier, feed: TradierFeed
) -> None:
    info = await feed.resolve("AAPL")  # lookup knows nothing, the quote does
    assert info is not None and (info.description, info.exchange) == ("AAPL Inc", "NASDAQ")
    assert await feed.resolve("NOPE") is None
    assert await feed.resolve("not a symbol!") is None


# -- history ------------------------------------------------------------------------------
def trading_days(first: date, count: int) -> list[date]:
    days: list[date] = []
    day = first
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day += timedelta(days=1)
    return days


async def test_daily_history_maps_to_utc_midnight_with_end_exclusive(
    fake: FakeTradier, feed: TradierFeed
) -> None:
    days = trading_days(date(2024, 3, 4), 10)
    fake.history[("AAPL", "daily")] = history_rows(days)
    start, end = utc_midnight(days[2]), utc_midnight(days[6])
    history = await feed.history("AAPL", Resolution.D1, start, end)
    assert [b.time for b in history.bars] == [utc_midnight(d) for d in days[2:6]]
    assert history.bars[0].close == 103
    query = fake.calls("/markets/history")[0].query
    assert query == {
        "symbol": "AAPL",
        "interval": "daily",
        "start": days[2].isoformat(),
        "end": (days[6] - timedelta(days=1)).isoformat(),
    }


async def test_daily_countback_returns_the_last_bars_before_end(
    fake: FakeTradier, feed: TradierFeed
) -> None:
    days = trading_days(date(2024, 1, 2), 60)
    fake.history[("AAPL", "daily")] = history_rows(days)
    end = utc_midnight(days[50])
    history = await feed.history("AAPL", Resolution.D1, end - 86_400, end, countback=20)
    assert [b.time for b in history.bars] == [utc_midnight(d) for d in days[30:50]]


async def test_empty_history_is_no_data_with_next_time(
    fake: FakeTradier, feed: TradierFeed
) -> None:
    days = trading_days(date(2024, 3, 4), 5)
    fake.history[("AAPL", "daily")] = history_rows(days)
    start = utc_midnight(date(2024, 4, 1))
    history = await feed.history("AAPL", Resolution.D1, start, start + 7 * 86_400)
    assert history.bars == []
    assert history.next_time == utc_midnight(days[-1])
    nothing = await feed.history("NOPE", Resolution.D1, start, start + 7 * 86_400)
    assert (nothing.bars, nothing.next_time) == ([], None)


async def test_weekly_history_uses_the_weekly_interval(
    fake: FakeTradier, feed: TradierFeed
) -> None:
    fake.history[("SPY", "weekly")] = history_rows([date(2024, 3, 4), date(2024, 3, 11)])
    history = await feed.history(
        "SPY", Resolution.W1, utc_midnight(date(2024, 3, 4)), utc_midnight(date(2024, 3, 18))
    )
    assert [b.time for b in history.bars] == [
        utc_midnight(date(2024, 3, 4)),
        utc_midnight(date(2024, 3, 11)),
    ]


async def test_intraday_hour_bars_are_built_from_15_minute_timesales(
    fake: FakeTradier, feed: TradierFeed
) -> None:
    rows = timesales_rows(SESSION_OPEN, 26, 15)  # 09:30-16:00 New York
    fake.timesales[("AAPL", "15min")] = rows
    day_start = SESSION_OPEN - SESSION_OPEN % 86_400
    history = await feed.history("AAPL", Resolution.H1, day_start, day_start + 86_400)
    # 13:30 UTC falls in the 13:00 bar; the day's 26 quarter-hours make 7 hour bars.
    times = [b.time for b in history.bars]
    assert times == [SESSION_OPEN - 1800 + i * 3600 for i in range(7)]
    first, second = history.bars[0], history.bars[1]
    assert (first.open, first.high, first.low, first.close, first.volume) == (50, 52, 49, 51.5, 30)
    assert (second.open, second.high, second.low, second.close) == (52, 56, 51, 55.5)
    assert second.volume == 30 + 40 + 50 + 60
    query = fake.calls("/markets/timesales")[0].query
    assert query["interval"] == "15min"
    assert query["session_filter"] == "all"
    assert query["start"] == "2024-03-11 20:00"  # UTC midnight, in New York time


async def test_intraday_countback_and_no_duplicates(fake: FakeTradier, feed: TradierFeed) -> None:
    rows = timesales_rows(SESSION_OPEN, 40, 5)
    fake.timesales[("AAPL", "5min")] = rows + rows[10:12]  # Tradier repeating itself
    end = SESSION_OPEN + 30 * 300
    history = await feed.history("AAPL", Resolution.M5, end - 300, end, countback=6)
    times = [b.time for b in history.bars]
    assert times == [SESSION_OPEN + i * 300 for i in range(24, 30)]
    full = await feed.history("AAPL", Resolution.M5, SESSION_OPEN, end)
    assert [b.time for b in full.bars] == [SESSION_OPEN + i * 300 for i in range(30)]


async def test_four_hour_countback_widens_the_window(fake: FakeTradier, feed: TradierFeed) -> None:
    days = [SESSION_OPEN + d * 86_400 for d in (-20, 0, 1, 2, 3, 6, 7)]  # a gap, a weekend
    fake.timesales[("SPY", "15min")] = [r for d in days for r in timesales_rows(d, 26, 15)]
    end = days[-1] + 86_400
    history = await feed.history("SPY", Resolution.H4, end - 3600, end, countback=14)
    times = [b.time for b in history.bars]
    assert len(times) == 14
    assert times == sorted(set(times))
    assert all(t % (4 * 3600) == 0 for t in times)
    assert times[0] == Resolution.H4.bar_start(days[0])  # found only by looking further back
    assert len(fake.calls("/markets/timesales")) == 2


# -- streaming ------------------------------------------------------------------------------
async def collect(feed: TradierFeed, symbols: list[str], into: asyncio.Queue[list[Quote]]) -> None:
    async for batch in feed.stream(symbols):
        await into.put(batch)


async def next_stream_quote(queue: asyncio.Queue[list[Quote]], symbol: str, last: float) -> Quote:
    """The first streamed quote for ``symbol`` at price ``last`` (skipping snapshots)."""
    async with asyncio.timeout(5):
        while True:
            for quote in await queue.get():
                if quote.symbol == symbol and quote.last == last:
                    return quote


def trade(symbol: str, price: float, cvol: int) -> dict[str, str]:
    return {
        "type": "trade",
        "symbol": symbol,
        "exch": "Q",
        "price": str(price),
        "size": "100",
        "cvol": str(cvol),
        "date": "1715000100000",
        "last": str(price),
    }


async def test_stream_subscribes_and_builds_full_quotes(
    fake: FakeTradier, feed: TradierFeed
) -> None:
    queue: asyncio.Queue[list[Quote]] = asyncio.Queue()
    task = asyncio.create_task(collect(feed, ["aapl", "SPY"], queue))
    try:
        sub = await fake.wait_for_subscriptions(1)
        assert sub.symbols == ["AAPL", "SPY"]
        assert sub.filter == ["quote", "trade"]
        assert sub.linebreak is True
        assert sub.sessionid in fake.sessions
        await fake.push(
            {"type": "quote", "symbol": "AAPL", "bid": 102.0, "bidsz": 4, "biddate": "1715000099000",
             "ask": 102.2, "asksz": 6, "askdate": "1715000099000"},
            trade("AAPL", 102.1, 2_000_000),
        )  # fmt: skip
        quote = await next_stream_quote(queue, "AAPL", 102.1)
        assert (quote.bid, quote.ask, quote.bid_size, quote.ask_size) == (102.0, 102.2, 4, 6)
        assert (quote.volume, quote.prev_close, quote.change) == (2_000_000, 100.0, 2.1)
        assert quote.open == 99.5  # from the REST snapshot
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


async def test_stream_reconnects_with_a_new_session_after_a_drop(
    fake: FakeTradier, feed: TradierFeed, caplog: pytest.LogCaptureFixture
) -> None:
    queue: asyncio.Queue[list[Quote]] = asyncio.Queue()
    task = asyncio.create_task(collect(feed, ["AAPL"], queue))
    try:
        first = await fake.wait_for_subscriptions(1)
        await fake.push(trade("AAPL", 103.0, 10))
        await next_stream_quote(queue, "AAPL", 103.0)
        fake.fail("/markets/events/session", 503)  # the first new session attempt fails too
        with caplog.at_level(logging.WARNING, logger="app.feeds.tradier"):
            await fake.drop_streams()
            second = await fake.wait_for_subscriptions(2)
        assert second.sessionid != first.sessionid
        assert second.symbols == ["AAPL"]
        await fake.push(trade("AAPL", 104.0, 20))
        quote = await next_stream_quote(queue, "AAPL", 104.0)
        assert quote.volume == 20
        assert "reconnecting" in caplog.text
        assert len(fake.calls("/markets/events/session")) == 3  # 1st, 503 retried, 2nd
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


async def test_stream_keeps_trying_while_the_session_endpoint_is_down(
    fake: FakeTradier, feed: TradierFeed, caplog: pytest.LogCaptureFixture
) -> None:
    fake.fail("/markets/events/session", 500, times=FAST.attempts * 2)  # two full failures
    queue: asyncio.Queue[list[Quote]] = asyncio.Queue()
    with caplog.at_level(logging.WARNING, logger="app.feeds.tradier"):
        task = asyncio.create_task(collect(feed, ["SPY"], queue))
        try:
            await fake.wait_for_subscriptions(1)
            await fake.push(trade("SPY", 511.0, 5))
            await next_stream_quote(queue, "SPY", 511.0)
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
    assert caplog.text.count("Tradier stream dropped") == 2


async def test_stream_refused_by_tradier_starts_over_with_a_new_session(
    fake: FakeTradier, feed: TradierFeed, caplog: pytest.LogCaptureFixture
) -> None:
    fake.refuse_subscriptions = 1
    queue: asyncio.Queue[list[Quote]] = asyncio.Queue()
    with caplog.at_level(logging.WARNING, logger="app.feeds.tradier"):
        task = asyncio.create_task(collect(feed, ["SPY"], queue))
        try:
            sub = await fake.wait_for_subscriptions(1)
            await fake.push(trade("SPY", 512.0, 6))
            await next_stream_quote(queue, "SPY", 512.0)
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
    assert fake.refusals == ["session expired"]
    assert len(fake.sessions) == 2 and fake.sessions[sub.sessionid]
    assert "Tradier refused the stream: session expired" in caplog.text
