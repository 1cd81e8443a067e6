"""TradeNote day documents from fills: executions, FIFO round trips, blotter, P&L."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from app.journal.ledger import TEMPLATE_COLUMNS, template_csv
from app.journal.tradenote import (
    build_day,
    day_unix,
    merge_executions,
    parse_date,
)
from app.models.orders import Fill, Intent
from app.sessions import trading_day

NY = ZoneInfo("America/New_York")
DAY = date(2025, 3, 12)
TD = day_unix(DAY, NY)


def at(hh: int, mm: int, ss: int = 0, day: date = DAY) -> float:
    return datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=NY).timestamp()


def fill(
    n: int,
    intent: Intent,
    qty: int,
    price: float,
    t: float,
    symbol: str = "AAPL",
    broker: str = "paper",
    commission: float = 0.0,
) -> Fill:
    return Fill(
        id=f"f{n}",
        order_id=f"o{n}",
        broker=broker,
        account="acct",
        symbol=symbol,
        intent=intent,
        quantity=qty,
        price=price,
        commission=commission,
        time=t,
    )


def account_for(f: Fill) -> str:
    return "paper" if f.broker == "paper" else "live"


def build(fills: list[Fill], existing: list[dict] | None = None):  # type: ignore[no-untyped-def]
    execs, _ = merge_executions(existing or [], fills, account_for, NY)
    return build_day(execs, {}, TD)


def test_day_math() -> None:
    assert int(datetime(2025, 3, 12, tzinfo=NY).timestamp()) == TD
    assert trading_day(at(23, 59), "XNYS") == DAY
    assert parse_date(DAY) == {"__type": "Date", "iso": "2025-03-12T00:00:00.000Z"}


def test_execution_fields_and_ids() -> None:
    t = at(9, 31, 5)
    fills = [fill(1, Intent.BUY, 10, 100.0, t, commission=1.0), fill(2, Intent.BUY, 5, 100.5, t)]
    execs, added = merge_executions([], fills, account_for, NY)
    assert added == 2
    assert [e["id"] for e in execs] == [
        f"e{int(t)}_AAPL_stock_B_1",
        f"e{int(t)}_AAPL_stock_B_2",
    ]
    e = execs[0]
    assert e["account"] == "paper" and e["side"] == "B" and e["strategy"] == "long"
    assert e["td"] == TD and e["execTime"] == int(t) and e["type"] == "stock"
    assert e["grossProceeds"] == -1000.0 and e["netProceeds"] == -1001.0
    assert e["sd"] == day_unix(date(2025, 3, 13), NY)
    for key in ("sec", "taf", "nscc", "nasdaq", "ecnRemove", "ecnAdd"):
        assert e[key] == 0


def test_merge_is_idempotent_and_keeps_ids() -> None:
    t = at(10, 0)
    first, _ = merge_executions([], [fill(1, Intent.BUY, 10, 100.0, t)], account_for, NY)
    again, added = merge_executions(first, [fill(1, Intent.BUY, 10, 100.0, t)], account_for, NY)
    assert added == 0 and again == first
    more, added = merge_executions(
        first, [fill(2, Intent.BUY, 1, 99.0, t + 0.5), fill(1, Intent.BUY, 10, 100.0, t)],
        account_for, NY,
    )  # fmt: skip
    assert added == 1
    ids = {e["fillId"]: e["id"] for e in more}
    assert ids["f1"] == first[0]["id"]  # never renumbered
    assert ids["f2"].endswith("_2")


def test_long_round_trip_with_scale_in_and_partial_closes() -> None:
    fills = [
        fill(1, Intent.BUY, 100, 10.0, at(9, 30), commission=1.0),
        fill(2, Intent.BUY, 100, 11.0, at(9, 40), commission=1.0),  # scale in
        fill(3, Intent.SELL, 150, 12.0, at(10, 0), commission=1.0),  # partial close
        fill(4, Intent.SELL, 50, 9.0, at(10, 30), commission=1.0),  # flat
    ]
    day = build(fills)
    assert len(day.trades) == 1
    t = day.trades[0]
    # FIFO: 100@10 -> 12 (+200), 50@11 -> 12 (+50), 50@11 -> 9 (-100)
    assert t["grossProceeds"] == 150.0
    assert t["netProceeds"] == 146.0
    assert t["commission"] == 4.0
    assert t["id"] == f"t{int(at(9, 30))}_AAPL_stock_B"
    assert (t["side"], t["strategy"], t["openPosition"]) == ("B", "long", False)
    assert (t["buyQuantity"], t["sellQuantity"]) == (200, 200)
    # as TradeNote's importer: the first execution is the entry, every later one an exit
    assert t["entryPrice"] == 10.0 and t["exitPrice"] == 9.0
    assert t["entryTime"] == int(at(9, 30)) and t["exitTime"] == int(at(10, 30))
    assert t["grossStatus"] == "win" and t["netStatus"] == "win"
    assert t["grossWins"] == 150.0 and t["grossLoss"] == 0
    assert t["grossSharePL"] == 0.75
    assert (t["tradesCount"], t["executionsCount"], t["grossWinsCount"]) == (1, 4, 1)
    assert t["grossEntryProceeds"] == -1000.0 and t["grossExitProceeds"] == 1150.0
    assert t["netEntryProceeds"] == -1001.0 and t["netExitProceeds"] == 1147.0
    assert len(t["executions"]) == 4
    assert all(e["trade"] == t["id"] for e in day.executions)
    assert not day.open_positions and not day.carry_out


def test_short_trip_loss_and_blotter_pnl() -> None:
    fills = [
        fill(1, Intent.SELL_SHORT, 50, 20.0, at(9, 45), symbol="TSLA"),
        fill(2, Intent.BUY_TO_COVER, 50, 21.0, at(11, 0), symbol="TSLA", commission=0.5),
        fill(3, Intent.BUY, 10, 5.0, at(12, 0), symbol="AMD"),
        fill(4, Intent.SELL, 10, 6.0, at(12, 5), symbol="AMD"),
    ]
    day = build(fills)
    tsla = next(t for t in day.trades if t["symbol"] == "TSLA")
    assert tsla["id"].endswith("_TSLA_stock_SS")
    assert (tsla["side"], tsla["strategy"]) == ("SS", "short")
    assert tsla["grossProceeds"] == -50.0 and tsla["netProceeds"] == -50.5
    assert tsla["grossStatus"] == "loss" and tsla["grossLossCount"] == 1
    assert day.blotter["TSLA"]["grossProceeds"] == -50.0
    assert day.blotter["AMD"]["grossProceeds"] == 10.0
    assert day.pnl["grossProceeds"] == -40.0
    assert day.pnl["netProceeds"] == -40.5
    assert day.pnl["trades"] == 2 and day.pnl["executions"] == 4
    assert day.pnl["grossWinsCount"] == 1 and day.pnl["grossLossCount"] == 1
    assert day.pnl["fees"] == 0.5


def test_flip_through_zero_closes_and_opens() -> None:
    fills = [
        fill(1, Intent.BUY, 10, 10.0, at(9, 30)),
        fill(2, Intent.SELL, 15, 11.0, at(9, 35)),  # closes 10 (+10), opens short 5
        fill(3, Intent.BUY_TO_COVER, 5, 10.0, at(9, 40)),  # +5
    ]
    day = build(fills)
    assert [t["strategy"] for t in day.trades] == ["long", "short"]
    assert [t["grossProceeds"] for t in day.trades] == [10.0, 5.0]
    assert all(not t["openPosition"] for t in day.trades)


def test_open_position_carries_into_next_day() -> None:
    d1 = build(
        [fill(1, Intent.BUY, 100, 10.0, at(15, 0)), fill(2, Intent.SELL, 40, 11.0, at(15, 30))]
    )
    trip = d1.trades[0]
    assert trip["openPosition"] and d1.open_positions
    assert trip["grossProceeds"] == 40.0  # realised today, FIFO
    assert trip["openLots"] == [[60, 10.0]]
    assert trip["grossStatus"] is None and trip["tradesCount"] == 0
    day2 = date(2025, 3, 13)
    td2 = day_unix(day2, NY)
    execs, _ = merge_executions(
        [], [fill(3, Intent.SELL, 60, 12.0, at(10, 0, day=day2))], account_for, NY
    )
    d2 = build_day(execs, d1.carry_out, td2)
    t2 = d2.trades[0]
    assert t2["id"] == trip["id"]  # same round trip, as TradeNote does for swing trades
    assert t2["td"] == td2 and not t2["openPosition"]
    assert t2["grossProceeds"] == 120.0
    assert (t2["buyQuantity"], t2["sellQuantity"]) == (100, 100)
    assert d2.closed_carried == [(TD, trip["id"], int(at(10, 0, day=day2)))]
    assert not d2.carry_out


def test_rebuild_is_deterministic() -> None:
    fills = [
        fill(i, Intent.BUY if i % 2 else Intent.SELL, 10, 10.0 + i, at(9, 30 + i))
        for i in range(1, 9)
    ]
    a = build(fills)
    execs, _ = merge_executions([], fills, account_for, NY)
    b = build_day(execs, {}, TD)
    again, added = merge_executions(b.executions, fills, account_for, NY)
    c = build_day(again, {}, TD)
    assert added == 0
    assert a.trades == b.trades == c.trades and a.pnl == c.pnl


def test_template_csv() -> None:
    text = template_csv(
        [fill(1, Intent.SELL_SHORT, 7, 12.5, at(9, 31, 2), broker="tradier", commission=0.35)],
        account_for,
        NY,
    )
    header, row = text.strip().split("\n")
    assert header.split(",") == TEMPLATE_COLUMNS
    cells = row.split(",")
    assert cells[:10] == ["live", "03/12/2025", "03/13/2025", "USD", "stock", "SS", "AAPL", "7", "12.5", "09:31:02"]  # fmt: skip
    assert cells[10] == "0.35" and cells[17] == "87.5" and cells[18] == "87.15"


def test_a_trade_whose_td_is_not_the_documents_day_is_refused() -> None:
    from app.journal.tradenote import InvalidDayDocument, check_day_document

    fills = [fill(1, Intent.BUY, 10, 5.0, at(12, 0)), fill(2, Intent.SELL, 10, 6.0, at(12, 5))]
    day = build(fills)
    td = day.trades[0]["td"]
    check_day_document({"trades": day.trades}, td)
    with pytest.raises(InvalidDayDocument, match="td"):
        check_day_document({"trades": day.trades}, td + 86400)
    bad = [{**day.trades[0], "netProceeds": None}]
    with pytest.raises(InvalidDayDocument, match="netProceeds"):
        check_day_document({"trades": bad}, td)


def test_an_option_contracts_proceeds_and_pnl_are_times_its_multiplier() -> None:
    """One contract is 100 shares: a round trip of 2 SPY calls bought at 1.50 and sold at
    2.25 made $150 before commissions, in the executions and in the trade."""
    call = "SPY261218C00600000"
    fills = [
        fill(1, Intent.BUY, 2, 1.50, at(9, 45), symbol=call, commission=1.30),
        fill(2, Intent.SELL, 2, 2.25, at(11, 0), symbol=call, commission=1.30),
    ]
    day = build(fills)
    assert [e["grossProceeds"] for e in day.executions] == [-300.0, 450.0]
    (t,) = day.trades
    assert t["grossProceeds"] == 150.0 and t["netProceeds"] == 147.4
