from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.feeds.base import UnknownSymbolError
from app.feeds.simulated import SimulatedFeed
from app.models.market import Resolution

NOW = datetime(2026, 11, 19, 15, 37, 42, tzinfo=UTC).timestamp()
DAY = 86_400


def feed(seed: int = 42) -> SimulatedFeed:
    return SimulatedFeed(["AAPL", "SPY", "TSLA"], seed=seed, clock=lambda: NOW)


def test_same_seed_same_market_other_seed_differs() -> None:
    a = feed().history_at("AAPL", Resolution.M5, int(NOW) - DAY, int(NOW), None, now=NOW)
    b = feed().history_at("AAPL", Resolution.M5, int(NOW) - DAY, int(NOW), None, now=NOW)
    c = feed(7).history_at("AAPL", Resolution.M5, int(NOW) - DAY, int(NOW), None, now=NOW)
    assert a == b
    assert [x.close for x in a.bars] != [x.close for x in c.bars]


@pytest.mark.parametrize("res", list(Resolution))
def test_bars_are_well_formed_and_inside_the_range(res: Resolution) -> None:
    start, end = int(NOW) - 400 * DAY, int(NOW) + 1
    if res.intraday:
        start = int(NOW) - 3 * DAY
    bars = feed().history_at("TSLA", res, start, end, None, now=NOW).bars
    assert bars, res
    times = [b.time for b in bars]
    assert times == sorted(set(times))
    assert start <= times[0] and times[-1] < end
    for b in bars:
        assert b.low <= min(b.open, b.close) <= max(b.open, b.close) <= b.high
        assert b.volume >= 0


def test_coarser_bars_aggregate_finer_ones() -> None:
    f = feed()
    start = int(NOW) - int(NOW) % DAY - DAY  # yesterday, a whole closed day
    ones = f.history_at("SPY", Resolution.M1, start, start + 3600, None, now=NOW).bars
    hour = f.history_at("SPY", Resolution.H1, start, start + 3600, None, now=NOW).bars
    assert len(ones) == 60 and len(hour) == 1
    assert hour[0].open == ones[0].open
    assert hour[0].close == ones[-1].close
    assert hour[0].high == max(b.high for b in ones)
    assert hour[0].low == min(b.low for b in ones)
    assert hour[0].volume == sum(b.volume for b in ones)
    day = f.history_at("SPY", Resolution.D1, start, start + DAY, None, now=NOW).bars
    minutes = f.history_at("SPY", Resolution.M1, start, start + DAY, None, now=NOW).bars
    assert day[0].close == minutes[-1].close and day[0].high == max(b.high for b in minutes)


def test_live_quote_agrees_with_the_forming_bar() -> None:
    f = feed()
    quote = f.quote_at("AAPL", NOW)
    bar = f.history_at("AAPL", Resolution.M1, int(NOW) - 60, int(NOW) + 1, None, now=NOW).bars[-1]
    assert bar.time == int(NOW) - int(NOW) % 60
    assert bar.close == quote.last
    assert bar.low <= quote.last <= bar.high
    assert quote.bid < quote.ask
    daily = f.history_at("AAPL", Resolution.D1, int(NOW) - DAY, int(NOW) + 1, None, now=NOW).bars[
        -1
    ]
    assert daily.close == quote.last and quote.prev_close is not None
    assert quote.low is not None and quote.high is not None
    assert quote.low <= quote.last <= quote.high


def test_history_stops_at_now() -> None:
    bars = (
        feed()
        .history_at("AAPL", Resolution.M1, int(NOW) - 600, int(NOW) + 3600, None, now=NOW)
        .bars
    )
    assert bars[-1].time <= NOW


def test_countback_returns_the_last_n_bars_before_to() -> None:
    h = feed().history_at("AAPL", Resolution.M15, int(NOW), int(NOW), 50, now=NOW)
    assert len(h.bars) == 50
    assert h.bars[-1].time < int(NOW)
    assert h.bars[1].time - h.bars[0].time == 900
    daily = feed().history_at("AAPL", Resolution.D1, 0, int(NOW), 5000, now=NOW)
    assert len(daily.bars) == 5000


def test_no_data_before_the_first_bar_and_next_time_for_gaps() -> None:
    before = feed().history_at("AAPL", Resolution.D1, 0, 86_400 * 100, None, now=NOW)
    assert before.bars == [] and before.next_time is None
    future = feed().history_at(
        "AAPL", Resolution.D1, int(NOW) + 10 * DAY, int(NOW) + 20 * DAY, None, now=NOW
    )
    assert future.bars == []
    assert future.next_time == int(NOW) - int(NOW) % DAY


def test_unknown_symbol_raises() -> None:
    with pytest.raises(UnknownSymbolError):
        feed().history_at("NOPE", Resolution.D1, 0, int(NOW), None, now=NOW)


async def test_stream_yields_batches_for_the_universe() -> None:
    f = SimulatedFeed(["AAPL", "SPY"], quote_rate=50)
    stream = f.stream(["AAPL", "SPY", "UNKNOWN"])
    batches = [await anext(stream) for _ in range(3)]
    await stream.aclose()
    assert all(sorted(q.symbol for q in b) == ["AAPL", "SPY"] for b in batches)


async def test_search_ranks_symbol_prefix_first() -> None:
    hits = await SimulatedFeed(["AAPL", "AMD", "SPY"]).search("a")
    assert [h.symbol for h in hits][:2] == ["AAPL", "AMD"]
    assert await SimulatedFeed(["AAPL"]).resolve("MSFT") is None
