"""Trading analytics and the P&L calendar, from our own fill ledger (the fills stream).

P&L is realised FIFO per (account, symbol), long and short, net of commissions; a round
trip runs from flat to flat. A fill's day is its trading day on the journal's calendar
(``app.sessions.trading_day``: the exchange's session date, the same day the journal's
documents use); the time zone only says which day is "today". Results are
cached in Redis keyed by their parameters and the fills stream's last entry id, so a
new fill invalidates them and nothing else does.

Money is ``points x quantity x multiplier`` (100 for an OCC option, a future's point
value). Each summary also breaks its P&L and trades down ``by_underlying`` (an option's
underlying, a share's own symbol) and ``by_strategy`` (the strategy of the fill that
opened the round trip): a round trip, its realised P&L and the commissions charged to
it belong to one group of each, so each breakdown sums to the summary's figures.

For the datahub: ``GET /api/v1/analytics`` -> ``analytics(redis, ...)``,
``GET /api/v1/analytics/calendar?months=N`` -> ``calendar(redis, N)``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from redis.asyncio import Redis

from app.bus import Keys
from app.journal.ledger import read_fills
from app.journal.tradenote import JOURNAL_CALENDAR, underlying_of
from app.models.instruments import multiplier_of
from app.models.orders import Fill
from app.portfolio.fifo import Lots, match
from app.sessions import trading_day

TRADING_DAYS = 252
DEFAULT_TZ = "America/New_York"
CALENDAR_MONTHS = (1, 3, 6, 12)
#: The breakdowns each summary has: output key -> the trip attribute it groups by.
GROUPINGS = {"by_underlying": "underlying", "by_strategy": "strategy"}


@dataclass
class Trip:
    account: str
    symbol: str
    long: bool
    entry_time: float
    exit_time: float = 0.0
    exit_day: date | None = None
    gross: float = 0.0
    commission: float = 0.0
    underlying: str = ""  # an option's underlying, a share's own symbol
    strategy: str = "default"  # the strategy of the fill that opened the round trip

    @property
    def net(self) -> float:
        return self.gross - self.commission


@dataclass
class _GroupDays:
    """One group's net and gross P&L per trading day (realised, commissions charged) and
    the symbols it filled that day."""

    net: dict[date, float] = field(default_factory=dict)
    gross: dict[date, float] = field(default_factory=dict)
    symbols: dict[date, set[str]] = field(default_factory=dict)

    def add(self, day: date, net: float, gross: float = 0.0) -> None:
        self.net[day] = self.net.get(day, 0.0) + net
        self.gross[day] = self.gross.get(day, 0.0) + gross


@dataclass
class _Book:
    lots: Lots = field(default_factory=deque)  # [signed qty, price]
    trip: Trip | None = None


@dataclass
class Realised:
    """Everything the figures are computed from, for one set of fills."""

    trips: list[Trip] = field(default_factory=list)
    daily: dict[date, float] = field(default_factory=dict)  # net P&L per trading day
    daily_gross: dict[date, float] = field(default_factory=dict)
    daily_trades: dict[date, int] = field(default_factory=dict)
    daily_fills: dict[date, int] = field(default_factory=dict)
    commissions: float = 0.0
    fills: int = 0
    # "underlying"/"strategy" -> group name -> its days
    groups: dict[str, dict[str, _GroupDays]] = field(default_factory=dict)

    def group_days(self, trip: Trip) -> list[_GroupDays]:
        """The days of each group ``trip`` belongs to (one per grouping)."""
        out = []
        for attribute in GROUPINGS.values():
            groups = self.groups.setdefault(attribute, {})
            out.append(groups.setdefault(getattr(trip, attribute), _GroupDays()))
        return out


def realise(fills: Sequence[Fill], calendar: str = JOURNAL_CALENDAR) -> Realised:
    """FIFO round trips and daily net P&L per trading day on ``calendar`` (``fills`` in
    time order)."""
    out = Realised()
    books: dict[tuple[str, str], _Book] = {}
    for fill in fills:
        day = trading_day(fill.time, calendar)
        out.fills += 1
        out.commissions += fill.commission
        out.daily_fills[day] = out.daily_fills.get(day, 0) + 1
        out.daily[day] = out.daily.get(day, 0.0) - fill.commission
        out.daily_gross.setdefault(day, 0.0)
        book = books.setdefault((fill.account, fill.symbol), _Book())
        remaining = float(fill.quantity * fill.side.sign)
        charged = False
        while abs(remaining) > 1e-9:
            if book.trip is None:
                book.trip = Trip(
                    fill.account,
                    fill.symbol,
                    remaining > 0,
                    fill.time,
                    underlying=underlying_of(fill.symbol),
                    strategy=fill.strategy,
                )
                out.trips.append(book.trip)
            trip = book.trip
            if not charged:
                trip.commission += fill.commission
                for group in out.group_days(trip):
                    group.add(day, -fill.commission)
                    group.symbols.setdefault(day, set()).add(fill.symbol)
                charged = True
            if (remaining > 0) == trip.long:
                book.lots.append([remaining, fill.price])
                remaining = 0.0
                break
            pnl, remaining = match(book.lots, remaining, fill.price)
            pnl *= multiplier_of(fill.symbol)  # points x quantity -> dollars
            trip.gross += pnl
            out.daily[day] += pnl
            out.daily_gross[day] += pnl
            for group in out.group_days(trip):
                group.add(day, pnl, pnl)
            if not book.lots:
                trip.exit_time = fill.time
                trip.exit_day = day
                out.daily_trades[day] = out.daily_trades.get(day, 0) + 1
                book.trip = None
    return out


def _streaks(values: Sequence[float]) -> tuple[int, int]:
    """Longest run of values > 0 and of values < 0."""
    best_win = best_loss = win = loss = 0
    for v in values:
        win = win + 1 if v > 0 else 0
        loss = loss + 1 if v < 0 else 0
        best_win, best_loss = max(best_win, win), max(best_loss, loss)
    return best_win, best_loss


def _r(value: float | None, digits: int = 4) -> float | None:
    if value is None or math.isnan(value) or math.isinf(value):
        return None
    return round(value, digits) + 0.0


def summarise(
    realised: Realised, *, start: date | None = None, end: date | None = None,
    capital: float | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The figures for round trips closed and days traded within [start, end]."""

    def in_range(d: date) -> bool:
        return (start is None or d >= start) and (end is None or d <= end)

    days = sorted(d for d in realised.daily if in_range(d))
    daily = [realised.daily[d] for d in days]
    closed = [t for t in realised.trips if t.exit_day is not None and in_range(t.exit_day)]
    closed.sort(key=lambda t: t.exit_time)
    nets = [t.net for t in closed]
    wins = [n for n in nets if n > 0]
    losses = [n for n in nets if n < 0]
    total = sum(daily)
    gross = sum(realised.daily_gross.get(d, 0.0) for d in days)
    commissions = gross - total
    win_rate = len(wins) / len(nets) if nets else None
    avg_win = sum(wins) / len(wins) if wins else None
    avg_loss = sum(losses) / len(losses) if losses else None
    profit_factor = (sum(wins) / -sum(losses)) if losses else None
    expectancy = sum(nets) / len(nets) if nets else None

    returns = [p / capital for p in daily] if capital else list(daily)
    sharpe = sortino = None
    if len(returns) >= 2:
        mean = sum(returns) / len(returns)
        var = sum((r - mean) ** 2 for r in returns) / (len(returns) - 1)
        if var > 0:
            sharpe = mean / math.sqrt(var) * math.sqrt(TRADING_DAYS)
        downside = math.sqrt(sum(min(r, 0.0) ** 2 for r in returns) / len(returns))
        if downside > 0:
            sortino = mean / downside * math.sqrt(TRADING_DAYS)

    peak = equity = 0.0
    max_dd = 0.0
    max_dd_pct: float | None = 0.0 if capital else None
    for p in daily:
        equity += p
        peak = max(peak, equity)
        dd = peak - equity
        if dd > max_dd:
            max_dd = dd
            if capital:
                max_dd_pct = dd / (capital + peak)
    best = max(days, key=lambda d: realised.daily[d]) if days else None
    worst = min(days, key=lambda d: realised.daily[d]) if days else None
    trade_win_streak, trade_loss_streak = _streaks(nets)
    day_win_streak, day_loss_streak = _streaks(daily)
    return {
        "total_pnl": _r(total, 2),
        "gross_pnl": _r(gross, 2),
        "commissions": _r(commissions, 2),
        "trades": len(nets),
        "wins": len(wins),
        "losses": len(losses),
        "win_rate": _r(win_rate),
        "profit_factor": _r(profit_factor),
        "average_win": _r(avg_win, 2),
        "average_loss": _r(avg_loss, 2),
        "expectancy": _r(expectancy, 2),
        "sharpe": _r(sharpe),
        "sortino": _r(sortino),
        "max_drawdown": _r(max_dd, 2),
        "max_drawdown_pct": _r(max_dd_pct),
        "best_day": {"date": best.isoformat(), "pnl": _r(realised.daily[best], 2)}
        if best
        else None,
        "worst_day": {"date": worst.isoformat(), "pnl": _r(realised.daily[worst], 2)}
        if worst
        else None,
        "longest_win_streak": trade_win_streak,
        "longest_loss_streak": trade_loss_streak,
        "longest_winning_days": day_win_streak,
        "longest_losing_days": day_loss_streak,
        "days_traded": len(days),
        "open_positions": sum(1 for t in realised.trips if not t.exit_time),
        **{
            key: _breakdown(realised, attribute, closed, in_range)
            for key, attribute in GROUPINGS.items()
        },
    }


def _breakdown(
    realised: Realised, attribute: str, closed: Sequence[Trip], in_range: Callable[[date], bool]
) -> dict[str, dict[str, Any]]:
    """Per group (an underlying, a strategy) with fills in the range: its P&L and the
    round trips it closed there, its open round trips, and the symbols it filled there."""
    out: dict[str, dict[str, Any]] = {}
    for name, days in sorted(realised.groups.get(attribute, {}).items()):
        active = [d for d in days.net if in_range(d)]
        if not active:
            continue
        total = sum(days.net[d] for d in active)
        gross = sum(days.gross[d] for d in active)
        nets = [t.net for t in closed if getattr(t, attribute) == name]
        wins = sum(1 for n in nets if n > 0)
        open_trips = sum(
            1 for t in realised.trips if not t.exit_time and getattr(t, attribute) == name
        )
        out[name] = {
            "total_pnl": _r(total, 2),
            "gross_pnl": _r(gross, 2),
            "commissions": _r(gross - total, 2),
            "trades": len(nets),
            "wins": wins,
            "losses": sum(1 for n in nets if n < 0),
            "win_rate": _r(wins / len(nets)) if nets else None,
            "open_positions": open_trips,
            "symbols": sorted(set().union(*(days.symbols.get(d, set()) for d in active))),
        }
    return out


# -- caching --------------------------------------------------------------------------
async def _stream_version(redis: Redis) -> str:
    last: Any = await redis.xrevrange(Keys.FILLS_STREAM, count=1)
    if not last:
        return "empty"
    entry_id = last[0][0]
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


async def _cached(
    redis: Redis, key: str, compute: Callable[[], Awaitable[dict[str, Any]]]
) -> dict[str, Any]:
    version = await _stream_version(redis)
    raw = await redis.hget(Keys.JOURNAL_ANALYTICS, key)
    if raw:
        cached = orjson.loads(raw)
        if cached.get("version") == version:
            data: dict[str, Any] = cached["data"]
            data["cached"] = True
            return data
    data = await compute()
    data["cached"] = False
    pipe = redis.pipeline(transaction=False)
    pipe.hset(Keys.JOURNAL_ANALYTICS, key, orjson.dumps({"version": version, "data": data}))
    pipe.expire(Keys.JOURNAL_ANALYTICS, 86_400)
    await pipe.execute()
    return data


# -- the two entry points ----------------------------------------------------------------
async def analytics(
    redis: Redis,
    *,
    start: date | None = None,
    end: date | None = None,
    capital: float | None = None,
    tz: str = DEFAULT_TZ,
    calendar: str = JOURNAL_CALENDAR,
) -> dict[str, Any]:
    """Total, paper and live figures from the fill ledger (see ``summarise``).

    ``capital`` turns daily P&L into returns for Sharpe/Sortino (they are scale-free,
    so it only changes ``max_drawdown_pct``)."""
    key = f"analytics:{start}:{end}:{capital}:{tz}:{calendar}"

    async def compute() -> dict[str, Any]:
        fills = await read_fills(redis)
        paper = [f for f in fills if f.broker == "paper"]
        live = [f for f in fills if f.broker != "paper"]
        return {
            "generated_at": datetime.now(UTC).isoformat(),
            "timezone": tz,
            "calendar": calendar,
            "start": start.isoformat() if start else None,
            "end": end.isoformat() if end else None,
            "fills": len(fills),
            "total": summarise(realise(fills, calendar), start=start, end=end, capital=capital),
            "paper": summarise(realise(paper, calendar), start=start, end=end, capital=capital),
            "live": summarise(realise(live, calendar), start=start, end=end, capital=capital),
        }

    return await _cached(redis, key, compute)


def calendar_start(today: date, months: int) -> date:
    """The first day of the month ``months - 1`` months before ``today``'s."""
    index = today.year * 12 + today.month - 1 - (months - 1)
    return date(index // 12, index % 12 + 1, 1)


async def calendar(
    redis: Redis,
    months: int,
    *,
    tz: str = DEFAULT_TZ,
    today: date | None = None,
    exchange: str = JOURNAL_CALENDAR,
) -> dict[str, Any]:
    """Daily net P&L for a heat map: every calendar day of the last ``months`` months
    (whole months, the current one included), with trades closed and fills per day."""
    if not 1 <= months <= 24:
        raise ValueError("months must be between 1 and 24")
    zone = ZoneInfo(tz)
    now = today or datetime.now(zone).date()
    first = calendar_start(now, months)
    key = f"calendar:{months}:{first}:{now}:{tz}:{exchange}"

    async def compute() -> dict[str, Any]:
        fills = await read_fills(redis)
        realised = realise(fills, exchange)
        days: list[dict[str, Any]] = []
        d = first
        while d <= now:
            days.append(
                {
                    "date": d.isoformat(),
                    "pnl": _r(realised.daily.get(d, 0.0), 2),
                    "trades": realised.daily_trades.get(d, 0),
                    "fills": realised.daily_fills.get(d, 0),
                }
            )
            d += timedelta(days=1)
        active = [x for x in days if x["fills"]]
        pnls = [float(x["pnl"] or 0.0) for x in days]
        return {
            "months": months,
            "start": first.isoformat(),
            "end": now.isoformat(),
            "timezone": tz,
            "calendar": exchange,
            "total": _r(sum(pnls), 2),
            "best": max(active, key=lambda x: float(x["pnl"] or 0.0)) if active else None,
            "worst": min(active, key=lambda x: float(x["pnl"] or 0.0)) if active else None,
            "days": days,
        }

    return await _cached(redis, key, compute)
