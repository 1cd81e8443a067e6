"""A backtest's figures from its equity curve and fills (``summary.json``'s ``metrics``).

Computed here with numpy (already a dependency) rather than QuantStats or empyrical:
the formulas are a few lines each, QuantStats pulls matplotlib, seaborn, scipy and
yfinance, and every figure here must be the same byte for byte on every run.

Conventions (also written into ``summary.json`` as ``metrics.basis``):

- daily returns: the equity at the end of each trading session of the run's calendar in
  [from, to] (the last equity point of that trading day, carried forward over a session
  without one), the first against the starting cash;
- annualised with 252 trading days, risk-free rate 0;
- Sharpe: mean / sample standard deviation (ddof 1) x sqrt(252); Sortino: mean /
  downside deviation (root mean square of min(r, 0) over all days) x sqrt(252), the
  journal's definitions (``app/journal/analytics.py``);
- CAGR: (final / starting) ^ (252 / sessions) - 1;
- max drawdown: the largest fall from a running peak of every equity point (dollars and
  percent of that peak), its duration from the peak to the recovery (or the run's end);
- exposure: the share of the sessions' open time with any non-zero position (from fills).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np

from app.journal.analytics import Realised, summarise
from app.models.orders import Fill
from app.sessions import get_sessions, trading_day

TRADING_DAYS = 252
BASIS = (
    "daily returns from the equity at the end of each trading session in the range "
    "(the first against the starting cash); annualised with 252 trading days; risk-free "
    "rate 0; sharpe = mean / sample std * sqrt(252); sortino = mean / downside deviation "
    "(rms of min(r, 0)) * sqrt(252); cagr = (final / starting) ^ (252 / sessions) - 1; "
    "drawdown from every equity point, duration from peak to recovery or the run's end; "
    "exposure = share of session time with any open position"
)


def rounded(value: float | None, digits: int = 6) -> float | None:
    """``value`` rounded (None for None, NaN and infinities; -0.0 made 0.0)."""
    if value is None or math.isnan(value) or math.isinf(value):
        return None
    return round(value, digits) + 0.0


def session_bounds(first: date, last: date, calendar: str) -> list[tuple[date, float, float]]:
    """Each session in [first, last]: its date, open and close (epoch seconds)."""
    sessions = get_sessions(calendar)
    out = []
    day = first
    while day <= last:
        found = sessions.session(day)
        if found is not None:
            out.append((day, found.open.timestamp(), found.close.timestamp()))
        day += timedelta(days=1)
    return out


def daily_closes(
    equity: Sequence[tuple[float, float]], days: Sequence[date], starting: float, calendar: str
) -> list[float]:
    """The equity at the end of each of ``days`` (carried forward over a day without one)."""
    last_of: dict[date, float] = {}
    for t, value in equity:
        last_of[trading_day(t, calendar)] = value
    out, value = [], starting
    for day in days:
        value = last_of.get(day, value)
        out.append(value)
    return out


def daily_returns(closes: Sequence[float], starting: float) -> np.ndarray:
    levels = np.array([starting, *closes], dtype=float)
    if len(levels) < 2 or np.any(levels[:-1] <= 0):
        return np.zeros(0)
    return levels[1:] / levels[:-1] - 1.0  # type: ignore[no-any-return]


def cagr(starting: float, final: float, periods: int) -> float | None:
    """Compound annual growth over ``periods`` trading days."""
    if periods <= 0 or starting <= 0 or final <= 0:
        return None
    return float((final / starting) ** (TRADING_DAYS / periods) - 1.0)


def sharpe(returns: np.ndarray) -> float | None:
    if len(returns) < 2:
        return None
    std = float(np.std(returns, ddof=1))
    if std <= 1e-15:
        return None
    return float(np.mean(returns)) / std * math.sqrt(TRADING_DAYS)


def sortino(returns: np.ndarray) -> float | None:
    if len(returns) < 2:
        return None
    downside = math.sqrt(float(np.mean(np.minimum(returns, 0.0) ** 2)))
    if downside <= 1e-15:
        return None
    return float(np.mean(returns)) / downside * math.sqrt(TRADING_DAYS)


@dataclass
class Drawdown:
    amount: float = 0.0  # dollars, the largest fall from a running peak
    pct: float = 0.0  # the largest fall as a fraction of its peak
    peak_time: float | None = None  # the peak before the largest fall (dollars)
    trough_time: float | None = None
    recovery_time: float | None = None  # back at the peak, or None (not recovered)
    duration: float = 0.0  # seconds from that peak to its recovery or the last point
    longest: float = 0.0  # seconds: the longest time under a peak (to recovery or the end)


def drawdown(points: Sequence[tuple[float, float]]) -> Drawdown:
    """The largest drawdown of an equity curve ``[(t, equity)]`` in time order."""
    out = Drawdown()
    if not points:
        return out
    peak_t, peak = points[0]
    under = False
    for t, value in points:
        if value >= peak:  # a new peak, or back at the old one: a drawdown ends
            if under:
                out.longest = max(out.longest, t - peak_t)
                if out.peak_time == peak_t:
                    out.recovery_time = t
            peak, peak_t, under = value, t, False
            continue
        under = True
        fall = peak - value
        if peak > 0:
            out.pct = max(out.pct, fall / peak)
        if fall > out.amount:
            out.amount, out.peak_time, out.trough_time = fall, peak_t, t
            out.recovery_time = None
    if under:
        out.longest = max(out.longest, points[-1][0] - peak_t)
    if out.peak_time is not None:
        end = out.recovery_time if out.recovery_time is not None else points[-1][0]
        out.duration = end - out.peak_time
    return out


def open_intervals(fills: Sequence[Fill], end: float) -> list[tuple[float, float]]:
    """When any position was open: [(from, to)] from the fills (time order), the last
    one closed at ``end`` if still open."""
    position: dict[tuple[str, str], float] = {}
    out: list[tuple[float, float]] = []
    since: float | None = None
    for fill in fills:
        key = (fill.account, fill.symbol)
        qty = position.get(key, 0.0) + fill.quantity * fill.side.sign
        position[key] = 0.0 if abs(qty) < 1e-9 else qty
        holding = any(position.values())
        if holding and since is None:
            since = fill.time
        elif not holding and since is not None:
            out.append((since, fill.time))
            since = None
    if since is not None:
        out.append((since, max(end, since)))
    return out


def exposure(
    fills: Sequence[Fill], sessions: Sequence[tuple[date, float, float]], end: float
) -> float | None:
    """The share of the sessions' open time with any position open."""
    total = sum(close - open_ for _, open_, close in sessions)
    if total <= 0:
        return None
    held = 0.0
    for lo, hi in open_intervals(fills, end):
        for _, open_, close in sessions:
            held += max(0.0, min(hi, close) - max(lo, open_))
    return held / total


def curve_origin(
    sessions: Sequence[tuple[date, float, float]],
    equity: Sequence[tuple[float, float]],
    start: float,
) -> float:
    """Where the curve starts at the starting cash: the first session's open (not before
    the first equity point), or ``start`` without sessions."""
    origin = sessions[0][1] if sessions else start
    return min(origin, equity[0][0]) if equity else origin


def figures(
    *,
    equity: Sequence[tuple[float, float]],
    fills: Sequence[Fill],
    realised: Realised,
    decisions: Sequence[dict[str, Any]],
    starting: float,
    start: datetime,
    end: datetime,
    calendar: str,
) -> dict[str, Any]:
    """The headline figures of a run (see the module docstring for each definition)."""
    sessions = session_bounds(start.date(), end.date(), calendar)
    days = [d for d, _, _ in sessions]
    closes = daily_closes(equity, days, starting, calendar)
    returns = daily_returns(closes, starting)
    final = equity[-1][1] if equity else starting
    origin = curve_origin(sessions, equity, start.timestamp())
    dd = drawdown([(origin, starting), *equity])
    trades = summarise(realised, capital=starting)
    denials = Counter(d.get("check") or "" for d in decisions if d.get("status") == "denied")
    return {
        "basis": BASIS,
        "calendar": calendar,
        "sessions": len(days),
        "curve_start": _iso(origin),
        "starting_equity": rounded(starting, 2),
        "final_equity": rounded(final, 2),
        "net_pnl": rounded(final - starting, 2),
        "total_return": rounded(final / starting - 1.0 if starting else None),
        "cagr": rounded(cagr(starting, final, len(days))),
        "sharpe": rounded(sharpe(returns), 4),
        "sortino": rounded(sortino(returns), 4),
        "volatility": rounded(
            float(np.std(returns, ddof=1)) * math.sqrt(TRADING_DAYS) if len(returns) > 1 else None
        ),
        "max_drawdown": rounded(dd.amount, 2),
        "max_drawdown_pct": rounded(dd.pct),
        "max_drawdown_peak": _iso(dd.peak_time),
        "max_drawdown_trough": _iso(dd.trough_time),
        "max_drawdown_recovery": _iso(dd.recovery_time),
        "max_drawdown_duration_seconds": rounded(dd.duration, 0),
        "longest_drawdown_seconds": rounded(dd.longest, 0),
        "exposure": rounded(exposure(fills, sessions, end.timestamp())),
        "trades": trades["trades"],
        "win_rate": trades["win_rate"],
        "profit_factor": trades["profit_factor"],
        "expectancy": trades["expectancy"],
        "commissions": trades["commissions"],
        "fills": len(fills),
        "denials": sum(denials.values()),
        "denials_by_check": dict(sorted(denials.items())),
    }


def _iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, UTC).isoformat()
