"""The backtest's figures on hand-made equity curves and fills, each value worked out by
hand in the comment beside it; and the report page built from them."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest

from app.backtest.metrics import (
    cagr,
    daily_closes,
    daily_returns,
    drawdown,
    exposure,
    figures,
    open_intervals,
    session_bounds,
    sharpe,
    sortino,
)
from app.backtest.report import decimate, monthly_returns, render
from app.backtest.results import summary
from app.backtest.runner import BacktestResult
from app.journal.analytics import realise
from app.models.orders import Fill, Intent

SQRT252 = math.sqrt(252)


def fill(n: int, symbol: str, intent: Intent, qty: int, price: float, t: float, comm: float = 0.0):
    return Fill(
        id=f"f{n}",
        order_id=f"o{n}",
        broker="paper",
        account="default",
        symbol=symbol,
        intent=intent,
        quantity=qty,
        price=price,
        commission=comm,
        time=t,
        strategy="s",
    )


def test_cagr_by_hand() -> None:
    assert cagr(100.0, 200.0, 252) == pytest.approx(1.0)  # doubles in a year: 100 %
    assert cagr(100.0, 121.0, 504) == pytest.approx(0.10)  # 1.21 over two years: 10 %/yr
    assert cagr(100.0, 50.0, 252) == pytest.approx(-0.5)
    assert cagr(100.0, 0.0, 252) is None  # wiped out: no growth rate
    assert cagr(100.0, 110.0, 0) is None


def test_sharpe_and_sortino_by_hand() -> None:
    r = np.array([0.01, -0.01, 0.02, 0.0])
    # mean 0.005; deviations .005 -.015 .015 -.005 -> squares sum 5e-4, /3 -> std 0.0129099
    assert sharpe(r) == pytest.approx(0.005 / math.sqrt(5e-4 / 3) * SQRT252)
    assert sharpe(r) == pytest.approx(6.1482, abs=1e-4)
    # downside: rms of (0, -0.01, 0, 0) = sqrt(1e-4 / 4) = 0.005 -> mean / 0.005 = 1
    assert sortino(r) == pytest.approx(SQRT252)
    assert sharpe(np.array([0.01, 0.01, 0.01])) is None  # no variance: undefined
    assert sortino(np.array([0.01, 0.02])) is None  # no losing day: undefined
    assert sharpe(np.array([0.01])) is None


def test_daily_returns_start_from_the_starting_cash() -> None:
    r = daily_returns([110.0, 99.0, 99.0], 100.0)
    assert r.tolist() == pytest.approx([0.10, -0.10, 0.0])


def test_daily_closes_are_each_sessions_last_point_carried_forward() -> None:
    # XNYS, 2026-11-02 (Mon) .. 2026-11-06 (Fri); New York is UTC-5 after 2026-11-01
    days = [d for d, _, _ in session_bounds(date(2026, 11, 1), date(2026, 11, 8), "XNYS")]
    assert days == [date(2026, 11, 2) + timedelta(days=i) for i in range(5)]

    def at(day: int, hour: int) -> float:
        return datetime(2026, 11, day, hour, tzinfo=UTC).timestamp()

    equity = [(at(2, 15), 101.0), (at(2, 20), 102.0), (at(4, 16), 99.0), (at(6, 20), 105.0)]
    # Mon 102 (its last point), Tue none -> 102, Wed 99, Thu none -> 99, Fri 105
    assert daily_closes(equity, days, 100.0, "XNYS") == [102.0, 102.0, 99.0, 99.0, 105.0]


def test_drawdown_by_hand() -> None:
    points = [(0.0, 100.0), (10.0, 120.0), (20.0, 90.0), (30.0, 110.0), (40.0, 125.0)]
    points += [(50.0, 100.0)]
    dd = drawdown(points)
    assert dd.amount == 30.0  # 120 -> 90
    assert dd.pct == pytest.approx(0.25)  # 30 / 120 (the later 125 -> 100 is 20 %)
    assert (dd.peak_time, dd.trough_time, dd.recovery_time) == (10.0, 20.0, 40.0)
    assert dd.duration == 30.0  # peak at 10, back above 120 at 40
    assert dd.longest == 30.0  # 10 -> 40 (125 -> 100 lasts 10 s to the end)
    never = drawdown([(0.0, 100.0), (5.0, 80.0), (9.0, 90.0)])
    assert never.recovery_time is None and never.duration == 9.0 and never.longest == 9.0
    assert drawdown([(0.0, 1.0), (1.0, 2.0)]).amount == 0.0


def test_exposure_counts_only_session_time_with_a_position() -> None:
    sessions = [(date(2026, 1, 5), 0.0, 100.0), (date(2026, 1, 6), 200.0, 300.0)]
    fills = [
        fill(1, "AAPL", Intent.BUY, 10, 100.0, 50.0),
        fill(2, "MSFT", Intent.SELL_SHORT, 5, 50.0, 60.0),
        fill(3, "AAPL", Intent.SELL, 10, 101.0, 70.0),  # MSFT still open: still exposed
        fill(4, "MSFT", Intent.BUY_TO_COVER, 5, 49.0, 250.0),
    ]
    assert open_intervals(fills, 400.0) == [(50.0, 250.0)]
    # 50..100 in the first session, 200..250 in the second: 100 of 200 s
    assert exposure(fills, sessions, 400.0) == pytest.approx(0.5)
    # a position still open at the end counts to the last session's close
    assert exposure(fills[:1], sessions, 400.0) == pytest.approx((50 + 100) / 200)
    assert exposure([], sessions, 400.0) == 0.0


def year_of_doubling() -> BacktestResult:
    """252 XNYS sessions from 2025-01-02; equity compounds to twice the cash by the last."""
    sessions = session_bounds(date(2025, 1, 1), date(2026, 2, 1), "XNYS")[:252]
    first, last = sessions[0][0], sessions[-1][0]
    result = BacktestResult(
        "double",
        datetime(first.year, first.month, first.day, tzinfo=UTC),
        datetime(last.year, last.month, last.day, 23, 59, 59, tzinfo=UTC),
        100_000.0,
    )
    result.equity = [
        (close - 60.0, round(100_000.0 * 2 ** ((i + 1) / 252), 2))
        for i, (_, _, close) in enumerate(sessions)
    ]
    result.runs = len(result.equity)
    return result


def test_figures_of_a_year_that_doubles() -> None:
    result = year_of_doubling()
    m = summary(result)["metrics"]
    assert m["sessions"] == 252
    assert m["final_equity"] == 200_000.0 and m["total_return"] == 1.0
    assert m["cagr"] == pytest.approx(1.0, abs=1e-6)  # 100 %
    assert m["max_drawdown"] == 0.0 and m["max_drawdown_duration_seconds"] == 0.0
    # every day's return is 2^(1/252) - 1 (to the cent): no variance to speak of
    assert m["sharpe"] is None or m["sharpe"] > 1_000
    assert m["sortino"] is None  # no losing day
    assert m["exposure"] == 0.0 and m["trades"] == 0 and m["win_rate"] is None


def test_trade_figures_and_denials_by_hand() -> None:
    t0 = datetime(2026, 11, 2, 15, tzinfo=UTC).timestamp()
    fills = [
        fill(1, "AAPL", Intent.BUY, 10, 100.0, t0, 1.0),
        fill(2, "AAPL", Intent.SELL, 10, 110.0, t0 + 600, 1.0),  # +100 gross, 98 net
        fill(3, "AAPL", Intent.BUY, 10, 100.0, t0 + 1200, 1.0),
        fill(4, "AAPL", Intent.SELL, 10, 95.0, t0 + 1800, 1.0),  # -50 gross, -52 net
    ]
    decisions = [
        {"status": "denied", "check": "max_positions"},
        {"status": "denied", "check": "max_positions"},
        {"status": "denied", "check": "market_hours"},
        {"status": "accepted"},
    ]
    m = figures(
        equity=[(t0 + 1800, 100_046.0)],
        fills=fills,
        realised=realise(fills),
        decisions=decisions,
        starting=100_000.0,
        start=datetime(2026, 11, 2, tzinfo=UTC),
        end=datetime(2026, 11, 2, 23, 59, 59, tzinfo=UTC),
        calendar="XNYS",
    )
    assert m["trades"] == 2 and m["win_rate"] == 0.5
    assert m["profit_factor"] == pytest.approx(98 / 52, abs=1e-4)
    assert m["expectancy"] == 23.0  # (98 - 52) / 2
    assert m["commissions"] == 4.0
    assert m["net_pnl"] == 46.0
    assert m["denials"] == 3
    assert m["denials_by_check"] == {"market_hours": 1, "max_positions": 2}
    # positions open 15:00-15:10 and 15:20-15:30 UTC of a 6.5 h session
    assert m["exposure"] == pytest.approx(1200 / (6.5 * 3600), abs=1e-6)


def test_monthly_returns_compound_from_month_end_to_month_end() -> None:
    def close(day: date) -> float:
        return datetime(day.year, day.month, day.day, 20, tzinfo=UTC).timestamp()

    equity = [(close(date(2026, 1, 30)), 110.0), (close(date(2026, 2, 27)), 99.0)]
    months = monthly_returns(equity, 100.0, date(2026, 1, 1), date(2026, 3, 31), "XNYS")
    # Jan 100 -> 110 (+10 %), Feb 110 -> 99 (-10 %), Mar flat (carried forward)
    assert months == pytest.approx({(2026, 1): 0.10, (2026, 2): -0.10, (2026, 3): 0.0})


def test_decimate_keeps_extremes_and_order() -> None:
    points = [(float(i), math.sin(i / 50.0) * 100) for i in range(20_000)]
    points[12_345] = (12_345.0, 1_000.0)
    out = decimate(points)
    assert len(out) <= 2_000
    assert out[0] == points[0] and out[-1] == points[-1]
    assert (12_345.0, 1_000.0) in out
    assert [t for t, _ in out] == sorted(t for t, _ in out)


def test_report_is_self_contained_and_the_same_each_time() -> None:
    result = year_of_doubling()
    result.errors = ["2025-03-03T15:00:00+00:00 double: error <boom>"]
    data = summary(result)
    page = render(data, result.equity, [], result.errors)
    assert page == render(data, result.equity, [], result.errors)
    text = page.decode()
    assert "http://" not in text and "https://" not in text and "<script" not in text
    assert text.count("<svg") == 2  # equity and drawdown
    assert "+100.00%" in text  # CAGR
    assert "&lt;boom&gt;" in text  # errors escaped
    assert "<th>Dec</th>" in text and "2025" in text
