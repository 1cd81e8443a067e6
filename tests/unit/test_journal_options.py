"""Options in the journal: TradeNote's ``call``/``put`` type, the OCC symbol, proceeds x100,
a close at price 0 (expired worthless), the Template CSV, and the analytics' breakdowns."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from app.journal.analytics import realise, summarise
from app.journal.ledger import template_csv
from app.journal.tradenote import (
    OpenTrip,
    build_day,
    check_day_document,
    day_fields,
    day_unix,
    instrument_of,
    merge_executions,
    positions_from_json,
    positions_to_json,
    underlying_of,
)
from app.models.orders import Fill, Intent

NY = ZoneInfo("America/New_York")
DAY = date(2025, 3, 12)
NEXT = date(2025, 3, 13)
TD = day_unix(DAY, NY)
CALL = "SPY261218C00600000"
PUT = "SPY261218P00550000"


def at(hh: int, mm: int, day: date = DAY) -> float:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=NY).timestamp()


_n = 0


def fill(
    intent: Intent,
    qty: float,
    price: float,
    t: float,
    symbol: str = CALL,
    commission: float = 0.0,
    strategy: str = "default",
) -> Fill:
    global _n
    _n += 1
    return Fill(
        id=f"f{_n}", order_id=f"o{_n}", broker="paper", account="acct", symbol=symbol,
        intent=intent, quantity=qty, price=price, commission=commission, time=t,
        strategy=strategy,
    )  # fmt: skip


def build(fills: list[Fill], carry: dict[str, OpenTrip] | None = None, td: int = TD) -> Any:
    execs, _ = merge_executions([], fills, lambda f: f.account, NY)
    return build_day(execs, carry or {}, td)


# -- what TradeNote is told ----------------------------------------------------------------
def test_instrument_of_options_and_shares() -> None:
    call = instrument_of(CALL)
    assert (call.type, call.symbol, call.underlying) == ("call", CALL, "SPY")
    assert instrument_of(PUT).type == "put"
    padded = instrument_of("SPY   261218C00600000")  # the OSI form: the compact symbol
    assert (padded.type, padded.symbol) == ("call", CALL)
    share = instrument_of("BRK.B")
    assert (share.type, share.symbol, share.underlying) == ("stock", "BRK_B", "BRK.B")
    assert underlying_of("AAPL") == "AAPL" and underlying_of(PUT) == "SPY"
    assert instrument_of("not a symbol!").type == "stock"


def test_option_round_trip_is_a_call_trade_with_dollar_proceeds() -> None:
    """Buy 2 contracts at 1.50, sell them at 2.25: +$150 gross (2 x 0.75 x 100)."""
    fills = [
        fill(Intent.BUY, 2, 1.50, at(10, 0), commission=0.65),
        fill(Intent.SELL, 2, 2.25, at(11, 0), commission=0.65),
    ]
    day = build(fills)
    buy, sell = day.executions
    assert buy["id"] == f"e{int(at(10, 0))}_{CALL}_call_B_1"
    assert sell["id"] == f"e{int(at(11, 0))}_{CALL}_call_S_1"
    assert (buy["type"], buy["symbol"], buy["symbolOriginal"]) == ("call", CALL, CALL)
    assert (buy["quantity"], buy["price"]) == (2, 1.50)  # contracts, price per share
    assert buy["grossProceeds"] == -300.0 and buy["netProceeds"] == -300.65
    assert sell["grossProceeds"] == 450.0 and sell["netProceeds"] == 449.35
    (trade,) = day.trades
    assert trade["id"] == f"t{int(at(10, 0))}_{CALL}_call_B"
    assert (trade["type"], trade["symbol"], trade["strategy"]) == ("call", CALL, "long")
    assert trade["grossProceeds"] == 150.0 and trade["netProceeds"] == pytest.approx(148.70)
    assert trade["grossEntryProceeds"] == -300.0 and trade["grossExitProceeds"] == 450.0
    assert (trade["entryPrice"], trade["exitPrice"]) == (1.50, 2.25)
    assert trade["grossSharePL"] == 75.0  # TradeNote's "P&L/Vol": per contract bought
    assert trade["grossStatus"] == "win" and trade["tradesCount"] == 1
    assert day.blotter[CALL]["type"] == "call" and day.blotter[CALL]["grossProceeds"] == 150.0
    assert day.pnl["grossProceeds"] == 150.0 and day.pnl["netProceeds"] == pytest.approx(148.7)
    check_day_document(day_fields(day, DAY), TD)


def test_an_option_that_expires_worthless_loses_the_whole_premium() -> None:
    fills = [
        fill(Intent.BUY, 3, 1.20, at(10, 0), symbol=PUT, commission=1.95),
        fill(Intent.SELL, 3, 0.0, at(16, 0), symbol=PUT),  # expired worthless
    ]
    day = build(fills)
    assert day.executions[1]["price"] == 0.0 and day.executions[1]["grossProceeds"] == 0.0
    (trade,) = day.trades
    assert trade["type"] == "put" and trade["id"].endswith(f"_{PUT}_put_B")
    assert trade["grossProceeds"] == -360.0 and trade["netProceeds"] == pytest.approx(-361.95)
    assert trade["exitPrice"] == 0.0 and trade["grossStatus"] == "loss"
    assert trade["openPosition"] is False
    check_day_document(day_fields(day, DAY), TD)


def test_a_written_option_that_expires_worthless_keeps_the_premium() -> None:
    fills = [
        fill(Intent.SELL_SHORT, 1, 0.80, at(10, 0), symbol=PUT),
        fill(Intent.BUY_TO_COVER, 1, 0.0, at(16, 0), symbol=PUT),
    ]
    (trade,) = build(fills).trades
    assert trade["strategy"] == "short" and trade["id"].endswith("_put_SS")
    assert trade["grossProceeds"] == 80.0


def test_an_option_carried_overnight_keeps_its_type() -> None:
    day1 = build([fill(Intent.BUY, 2, 1.50, at(15, 0))])
    (open_trade,) = day1.trades
    assert open_trade["type"] == "call" and open_trade["openPosition"] is True
    carried = positions_from_json(positions_to_json(day1.carry_out))  # via Redis
    day2 = build([fill(Intent.SELL, 2, 2.25, at(10, 0, NEXT))], carried, day_unix(NEXT, NY))
    (trade,) = day2.trades
    assert trade["id"] == open_trade["id"] and trade["type"] == "call"
    assert trade["grossProceeds"] == 150.0
    # an open trip stored before options had a type is a stock's
    stored = positions_to_json(day1.carry_out)
    for trip in stored.values():
        del trip["type"]
    assert [t.type for t in positions_from_json(stored).values()] == ["stock"]


def test_template_csv_option_rows() -> None:
    fills = [
        fill(Intent.BUY, 2, 1.50, at(10, 0), commission=0.65),
        fill(Intent.SELL, 2, 0.0, at(16, 0)),
        fill(Intent.BUY, 10, 100.0, at(10, 5), symbol="AAPL"),
    ]
    rows = list(csv.DictReader(io.StringIO(template_csv(fills, lambda f: f.account, NY))))
    buy, expired, share = rows
    assert (buy["Type"], buy["Symbol"], buy["Qty"], buy["Price"]) == ("call", CALL, "2", "1.5")
    assert (buy["Gross Proceeds"], buy["Net Proceeds"]) == ("-300", "-300.65")
    assert (expired["Price"], expired["Gross Proceeds"], expired["Net Proceeds"]) == ("0",) * 3
    assert (share["Type"], share["Symbol"], share["Gross Proceeds"]) == ("stock", "AAPL", "-1000")


# -- our analytics ---------------------------------------------------------------------------
def test_analytics_option_pnl_has_the_multiplier_and_a_zero_close() -> None:
    fills = [
        fill(Intent.BUY, 2, 1.50, at(10, 0), commission=0.65),
        fill(Intent.SELL, 2, 2.25, at(11, 0), commission=0.65),
        fill(Intent.BUY, 3, 1.20, at(12, 0), symbol=PUT),
        fill(Intent.SELL, 3, 0.0, at(16, 0), symbol=PUT),
    ]
    s = summarise(realise(fills))
    assert s["gross_pnl"] == 150.0 - 360.0 and s["commissions"] == 1.3
    assert (s["trades"], s["wins"], s["losses"]) == (2, 1, 1)
    assert s["average_loss"] == -360.0


def test_analytics_by_underlying_and_strategy() -> None:
    fills = [
        # SPY shares (strategy "trend") and a SPY call (strategy "wheel") are one underlying
        fill(Intent.BUY, 10, 500.0, at(9, 45), symbol="SPY", commission=1.0, strategy="trend"),
        fill(Intent.SELL, 10, 503.0, at(10, 30), symbol="SPY", commission=1.0, strategy="trend"),
        fill(Intent.BUY, 2, 1.50, at(10, 0), commission=0.65, strategy="wheel"),
        fill(Intent.SELL, 2, 2.25, at(11, 0), commission=0.65, strategy="wheel"),
        # AAPL (strategy "trend"), still open at the end
        fill(Intent.BUY, 5, 200.0, at(12, 0), symbol="AAPL", strategy="trend"),
        # a put on SPY that expires worthless, next day, opened by "wheel"
        fill(Intent.BUY, 1, 2.0, at(10, 0, NEXT), symbol=PUT, strategy="wheel"),
        fill(Intent.SELL, 1, 0.0, at(16, 0, NEXT), symbol=PUT, strategy="other"),
    ]
    r = realise(fills)
    s = summarise(r)
    spy = s["by_underlying"]["SPY"]
    assert spy["gross_pnl"] == 30.0 + 150.0 - 200.0
    assert spy["commissions"] == 3.3 and spy["total_pnl"] == pytest.approx(-23.3)
    assert (spy["trades"], spy["wins"], spy["losses"]) == (3, 2, 1)
    assert spy["symbols"] == ["SPY", CALL, PUT]
    assert spy["open_positions"] == 0
    aapl = s["by_underlying"]["AAPL"]
    assert (aapl["trades"], aapl["total_pnl"], aapl["open_positions"]) == (0, 0.0, 1)
    # a round trip belongs to the strategy that opened it (the put's close is "other"'s fill)
    assert sorted(s["by_strategy"]) == ["trend", "wheel"]
    wheel, trend = s["by_strategy"]["wheel"], s["by_strategy"]["trend"]
    assert wheel["gross_pnl"] == -50.0 and wheel["trades"] == 2
    assert wheel["symbols"] == [CALL, PUT]
    assert trend["gross_pnl"] == 30.0 and trend["commissions"] == 2.0 and trend["trades"] == 1
    assert trend["open_positions"] == 1
    # each breakdown adds up to the summary
    for key in ("by_underlying", "by_strategy"):
        groups = s[key].values()
        assert sum(g["total_pnl"] for g in groups) == pytest.approx(s["total_pnl"])
        assert sum(g["trades"] for g in groups) == s["trades"]
    # a range holds the groups with fills in it
    second = summarise(r, start=NEXT, end=NEXT)
    assert sorted(second["by_underlying"]) == ["SPY"]
    assert second["by_underlying"]["SPY"]["symbols"] == [PUT]
    assert second["by_strategy"]["wheel"]["gross_pnl"] == -200.0
    assert summarise(realise([]))["by_underlying"] == {}
