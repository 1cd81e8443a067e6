"""Analytics from the fill ledger: FIFO round trips, daily figures, ratios."""

from __future__ import annotations

import math
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from app.journal.analytics import calendar_start, realise, summarise
from app.models.orders import Fill, Intent

NY = ZoneInfo("America/New_York")
XNYS = "XNYS"


def at(day: int, hh: int = 10, mm: int = 0) -> float:
    return datetime(2025, 3, day, hh, mm, tzinfo=NY).timestamp()


_n = 0


def f(
    intent: Intent, qty: int, price: float, t: float, commission: float = 0.0, symbol: str = "AAPL"
) -> Fill:
    global _n
    _n += 1
    return Fill(
        id=f"f{_n}", order_id="o", broker="paper", account="a", symbol=symbol, intent=intent,
        quantity=qty, price=price, commission=commission, time=t,
    )  # fmt: skip


def trip(day: int, pnl: float, commission: float = 0.0) -> list[Fill]:
    """A long round trip on 2025-03-{day} that makes ``pnl`` gross."""
    return [
        f(Intent.BUY, 10, 100.0, at(day, 10), commission),
        f(Intent.SELL, 10, 100.0 + pnl / 10, at(day, 11)),
    ]


def test_figures() -> None:
    fills = [*trip(3, 100, 1.0), *trip(4, -50, 1.0), *trip(5, 200, 1.0), *trip(5, -20, 0.0)]
    s = summarise(realise(fills, XNYS))
    assert s["total_pnl"] == 227.0 and s["gross_pnl"] == 230.0 and s["commissions"] == 3.0
    assert (s["trades"], s["wins"], s["losses"]) == (4, 2, 2)
    assert s["win_rate"] == 0.5
    assert s["average_win"] == pytest.approx((99 + 199) / 2)
    assert s["average_loss"] == pytest.approx((-51 - 20) / 2)
    assert s["profit_factor"] == pytest.approx(round(298 / 71, 4))
    assert s["expectancy"] == pytest.approx(227 / 4)
    daily = [99.0, -51.0, 179.0]
    mean = sum(daily) / 3
    std = math.sqrt(sum((x - mean) ** 2 for x in daily) / 2)
    assert s["sharpe"] == pytest.approx(round(mean / std * math.sqrt(252), 4))
    downside = math.sqrt((51.0**2) / 3)
    assert s["sortino"] == pytest.approx(round(mean / downside * math.sqrt(252), 4))
    assert s["max_drawdown"] == 51.0
    assert s["best_day"] == {"date": "2025-03-05", "pnl": 179.0}
    assert s["worst_day"] == {"date": "2025-03-04", "pnl": -51.0}
    assert s["longest_win_streak"] == 1 and s["longest_loss_streak"] == 1
    assert s["days_traded"] == 3


def test_short_and_partial_fifo() -> None:
    fills = [
        f(Intent.SELL_SHORT, 10, 50.0, at(3, 10)),
        f(Intent.SELL_SHORT, 10, 52.0, at(3, 11)),
        f(Intent.BUY_TO_COVER, 15, 49.0, at(3, 12)),  # 10*(50-49) + 5*(52-49) = 25
        f(Intent.BUY_TO_COVER, 5, 53.0, at(4, 10)),  # 5*(52-53) = -5, trip closes
    ]
    r = realise(fills, XNYS)
    assert r.daily[date(2025, 3, 3)] == 25.0 and r.daily[date(2025, 3, 4)] == -5.0
    s = summarise(r)
    assert s["trades"] == 1 and s["wins"] == 1 and s["total_pnl"] == 20.0
    assert s["open_positions"] == 0


def test_streaks_and_range() -> None:
    fills = [*trip(3, 10), *trip(4, 10), *trip(5, 10), *trip(6, -10), *trip(7, -10)]
    s = summarise(realise(fills, XNYS))
    assert s["longest_win_streak"] == 3 and s["longest_loss_streak"] == 2
    assert s["longest_winning_days"] == 3 and s["longest_losing_days"] == 2
    ranged = summarise(realise(fills, XNYS), start=date(2025, 3, 6))
    assert ranged["trades"] == 2 and ranged["total_pnl"] == -20.0
    assert summarise(realise([], XNYS))["win_rate"] is None


def test_drawdown_pct_with_capital() -> None:
    fills = [*trip(3, 1000), *trip(4, -500)]
    s = summarise(realise(fills, XNYS), capital=10_000)
    assert s["max_drawdown"] == 500.0
    assert s["max_drawdown_pct"] == pytest.approx(500 / 11_000, abs=1e-4)


def test_calendar_start() -> None:
    assert calendar_start(date(2025, 3, 12), 1) == date(2025, 3, 1)
    assert calendar_start(date(2025, 3, 12), 3) == date(2025, 1, 1)
    assert calendar_start(date(2025, 3, 12), 12) == date(2024, 4, 1)
