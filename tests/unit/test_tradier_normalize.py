"""Tradier's JSON quirks, normalised in one place."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.feeds.tradier import QuoteBook, aggregate
from app.models.market import Bar, Quote, Resolution
from app.tradier import normalize as tn
from tests.fakes.tradier_server import history_rows, one_or_many, timesales_rows, tradier_quote

items = st.lists(
    st.dictionaries(st.sampled_from(["symbol", "price", "size"]), st.integers(), min_size=1),
    max_size=5,
)


@given(items)
def test_collection_recovers_every_item_whatever_tradier_encoding(
    rows: list[dict[str, Any]],
) -> None:
    body = {"quotes": {"quote": one_or_many(rows)}}
    assert tn.collection(body, "quotes", "quote") == rows


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"history": "null"}, []),
        ({"history": None}, []),
        ({"history": {"day": "null"}}, []),
        ({}, []),
        ({"history": {"day": {"date": "2024-01-02"}}}, [{"date": "2024-01-02"}]),
        (
            {"history": {"day": [{"date": "a"}, "null", {"date": "b"}]}},
            [{"date": "a"}, {"date": "b"}],
        ),
        ({"history": "unexpected text"}, []),
    ],
)
def test_collection_handles_null_missing_and_single_levels(body: Any, expected: list[Any]) -> None:
    assert tn.collection(body, "history", "day") == expected


def test_collection_of_strings_for_unmatched_symbols() -> None:
    assert tn.collection(
        {"quotes": {"unmatched_symbols": {"symbol": "XXX"}}},
        "quotes",
        "unmatched_symbols",
        "symbol",
    ) == ["XXX"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("281.85", 281.85),
        (12, 12.0),
        ("NaN", None),
        (None, None),
        ("", None),
        (True, None),
        ("x", None),
    ],
)
def test_num_accepts_numeric_strings_and_rejects_junk(raw: Any, expected: float | None) -> None:
    assert tn.num(raw) == expected


def test_quote_maps_every_field_and_uses_the_latest_timestamp() -> None:
    raw = tradier_quote("AAPL", 101.5, trade_date=1_715_000_001_000)
    quote = tn.quote_from_rest(raw, now=0)
    assert quote == Quote(
        symbol="AAPL",
        time=1_715_000_001.0,
        last=101.5,
        bid=101.49,
        ask=101.51,
        bid_size=3,
        ask_size=5,
        open=99.5,
        high=101.25,
        low=98.75,
        prev_close=100.0,
        volume=1_234_567,
        change=1.5,
        change_pct=1.5,
    )


def test_quote_without_trades_falls_back_to_previous_close() -> None:
    raw = tradier_quote("NEWCO", None, prevclose=12.0, trade_date=0, bid_date=0, ask_date=0)
    quote = tn.quote_from_rest(raw, now=42.0)
    assert quote is not None
    assert (quote.last, quote.bid, quote.ask, quote.time) == (12.0, 12.0, 12.0, 42.0)


def test_quote_with_no_price_at_all_is_dropped() -> None:
    raw = tradier_quote("DEAD", None, prevclose=None)
    assert tn.quote_from_rest(raw, now=0) is None


def test_quotes_and_unmatched_from_one_answer() -> None:
    body = {
        "quotes": {
            "quote": tradier_quote("SPY", 500.0),
            "unmatched_symbols": {"symbol": ["X1", "X2"]},
        }
    }
    quotes, unmatched = tn.quotes_from_rest(body, now=0)
    assert [q.symbol for q in quotes] == ["SPY"]
    assert unmatched == ["X1", "X2"]


def test_daily_history_bars_start_at_utc_midnight() -> None:
    body = {"history": {"day": history_rows([date(2024, 3, 11), date(2024, 3, 12)])}}
    bars = tn.history_bars(body, Resolution.D1)
    assert [b.time for b in bars] == [1_710_115_200, 1_710_201_600]
    assert (bars[0].open, bars[0].high, bars[0].low, bars[0].close, bars[0].volume) == (
        100,
        102,
        99,
        101,
        1000,
    )


def test_weekly_and_monthly_bars_snap_to_period_start() -> None:
    body = {"history": {"day": history_rows([date(2024, 3, 13)])}}  # a Wednesday
    assert tn.history_bars(body, Resolution.W1)[0].time == int(
        datetime(2024, 3, 11, tzinfo=UTC).timestamp()
    )
    assert tn.history_bars(body, Resolution.MN1)[0].time == int(
        datetime(2024, 3, 1, tzinfo=UTC).timestamp()
    )


def test_timesales_bars_use_the_epoch_not_new_york_wall_time() -> None:
    start = int(datetime(2024, 1, 10, 14, 30, tzinfo=UTC).timestamp())  # 09:30 in New York
    rows = timesales_rows(start, 2, 1)
    assert rows[0]["time"] == "2024-01-10T09:30:00"
    assert [b.time for b in tn.timesales_bars({"series": {"data": rows}})] == [start, start + 60]


def test_timesales_without_timestamp_reads_time_as_new_york() -> None:
    body = {"series": {"data": {"time": "2024-07-10T09:30:00", "price": 5, "volume": 1}}}
    (bar,) = tn.timesales_bars(body)
    assert bar.time == int(datetime(2024, 7, 10, 13, 30, tzinfo=UTC).timestamp())  # EDT
    assert (bar.open, bar.close) == (5, 5)


def test_timesales_request_times_are_new_york_wall_time() -> None:
    winter = int(datetime(2024, 1, 10, 14, 30, tzinfo=UTC).timestamp())
    summer = int(datetime(2024, 7, 10, 13, 30, tzinfo=UTC).timestamp())
    assert tn.new_york_minute(winter) == "2024-01-10 09:30"
    assert tn.new_york_minute(summer) == "2024-07-10 09:30"


def test_securities_map_exchange_and_type() -> None:
    body = {
        "securities": {
            "security": {
                "symbol": "SPY",
                "exchange": "P",
                "type": "etf",
                "description": "SPDR S&P 500",
            }
        }
    }
    (info,) = tn.securities(body)
    assert (info.symbol, info.exchange, info.type, info.description) == (
        "SPY",
        "NYSEARCA",
        "fund",
        "SPDR S&P 500",
    )
    assert tn.securities({"securities": "null"}) == []


def test_calendar_days_single_and_closed() -> None:
    body = {
        "calendar": {
            "month": 7,
            "year": 2024,
            "days": {
                "day": {"date": "2024-07-04", "status": "closed", "description": "Independence Day"}
            },
        }
    }
    (day,) = tn.calendar_days(body)
    assert (day.date, day.status, day.open_start) == ("2024-07-04", "closed", None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '{"fault":{"faultstring":"Invalid access token","detail":{"errorcode":"x"}}}',
            "Invalid access token",
        ),
        ('{"errors":{"error":"Invalid Parameter: symbol"}}', "Invalid Parameter: symbol"),
        ('{"errors":{"error":["a","b"]}}', "a; b"),
        ("Invalid Access Token\n", "Invalid Access Token"),
    ],
)
def test_error_message_shapes(text: str, expected: str) -> None:
    assert tn.error_message(text) == expected


def test_stream_events_split_lines_and_skip_garbage() -> None:
    frame = '{"type":"trade","symbol":"SPY","price":"1"}\nnot json\n\n{"type":"quote","symbol":"QQQ","bid":1}\n'
    assert [e["symbol"] for e in tn.stream_events(frame)] == ["SPY", "QQQ"]


def test_quote_book_merges_trades_and_quotes_into_full_quotes() -> None:
    book = QuoteBook(clock=lambda: 99.0)
    seed = tn.quote_from_rest(tradier_quote("SPY", 100.0, high=101.0, low=99.0), now=0)
    assert seed is not None
    book.seed([seed])
    (quote,) = book.apply(
        [
            {
                "type": "quote",
                "symbol": "SPY",
                "bid": 101.9,
                "bidsz": 7,
                "biddate": "1715000002000",
                "ask": 102.1,
                "asksz": 9,
                "askdate": "1715000003000",
            },
            {
                "type": "trade",
                "symbol": "SPY",
                "price": "102.0",
                "size": "100",
                "cvol": "2000000",
                "date": "1715000004000",
            },
        ]
    )
    assert (quote.last, quote.bid, quote.ask, quote.bid_size, quote.ask_size) == (
        102.0,
        101.9,
        102.1,
        7,
        9,
    )
    assert (quote.high, quote.low, quote.volume, quote.prev_close) == (
        102.0,
        99.0,
        2_000_000,
        100.0,
    )
    assert (quote.change, quote.change_pct, quote.time) == (2.0, 2.0, 1_715_000_004.0)


def test_quote_book_waits_for_a_price_before_publishing() -> None:
    book = QuoteBook()
    assert book.apply([{"type": "quote", "symbol": "QQQ", "bid": 1.0, "ask": 1.1}]) == []
    (quote,) = book.apply([{"type": "trade", "symbol": "QQQ", "price": "1.05"}])
    assert (quote.bid, quote.ask, quote.last) == (1.0, 1.1, 1.05)


def test_aggregate_rolls_up_on_the_resolution_grid() -> None:
    hour = 1_710_165_600  # 14:00 UTC
    bars = [
        Bar(time=hour + i * 900, open=10 + i, high=12 + i, low=9 - i, close=11 + i, volume=1)
        for i in range(6)
    ]
    out = aggregate(bars, Resolution.H1)
    assert [b.time for b in out] == [hour, hour + 3600]
    assert (out[0].open, out[0].high, out[0].low, out[0].close, out[0].volume) == (10, 15, 6, 14, 4)
    assert (out[1].open, out[1].close, out[1].volume) == (14, 16, 2)
