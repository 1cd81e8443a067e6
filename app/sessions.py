"""Exchange sessions and the trading day: one table per calendar, one rule for every surface.

exchange_calendars (and pandas) answer in milliseconds; risk asks "is the market open?"
per order and every fill needs its trading day, so each calendar code is materialised
once per process (``get_sessions``) into sorted Unix-second lists that a bisect reads.
Risk's ``SessionTable`` and kairos's ``TradingCalendar`` are views of that one table.

The trading day (``trading_day``) is the exchange's session date, pre- and after-market
included. The day rolls at a fixed local time per calendar (``DayRoll``):

- equity and other day-session exchanges (XNYS, XNAS, XLON, ...): midnight exchange-local,
  so 08:00, 12:00 and 19:00 New York on a Tuesday are all Tuesday's;
- CME futures (CMES and its aliases, us_futures): 18:00 New York, the evening session
  belongs to the next day (Globex's trade date);
- other calendars whose session opens the evening before (ICE US): their regular close;
- "24/7" (and "24/5"): 00:00 UTC, the calendar's own time zone.

A time whose day has no session (weekend, holiday) belongs to the next session: a
Sunday-evening futures fill is Monday's, a fill on Thanksgiving (2026-11-26) belongs to
Friday 2026-11-27 - the first session whose P&L and risk budget it can affect. Before
the calendar's first evaluable date (exchange_calendars' bound) the day is the roll's
local date itself.
"""

from __future__ import annotations

import threading
import warnings
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import exchange_calendars as xc

#: How far around today a calendar is materialised at first use; it grows on demand.
PAST = timedelta(days=3 * 366)
FUTURE = timedelta(days=3 * 366)
#: How much further a table grows when asked about a date outside it.
MARGIN = timedelta(days=366)

ALWAYS_OPEN = "24/7"


@dataclass(frozen=True, slots=True)
class Session:
    """One trading session: the exchange-local date and its UTC open/close (close exclusive)."""

    day: date
    open: datetime
    close: datetime
    break_start: datetime | None = None
    break_end: datetime | None = None

    def contains(self, t: datetime) -> bool:
        """True when ``open <= t < close`` and ``t`` is not inside a lunch break."""
        if not self.open <= t < self.close:
            return False
        return not (self.break_start and self.break_end and self.break_start <= t < self.break_end)


@dataclass(frozen=True, slots=True)
class DayRoll:
    """When the trading day changes: at ``at`` local time in ``tz``.

    ``evening``: day D runs from ``at`` on D-1 to ``at`` on D (futures, whose evening
    session is the next day's); otherwise from ``at`` on D to ``at`` on D+1.
    """

    tz: str
    at: time = time(0)
    evening: bool = False

    def start(self, day: date) -> float:
        """Unix seconds at which trading day ``day`` begins (before any session mapping)."""
        d = day - timedelta(days=1) if self.evening else day
        return datetime.combine(d, self.at, tzinfo=ZoneInfo(self.tz)).timestamp()

    def label(self, ts: float) -> date:
        """The day whose span holds ``ts``, whether or not it has a session."""
        local = datetime.fromtimestamp(ts, ZoneInfo(self.tz))
        d = local.date()
        if self.evening:
            return d + timedelta(days=1) if local.time() >= self.at else d
        return d if local.time() >= self.at else d - timedelta(days=1)


CME_ROLL = DayRoll("America/New_York", time(18), evening=True)
#: Calendars whose roll is set, not derived (keys are canonical exchange_calendars codes).
ROLLS: dict[str, DayRoll] = {"CMES": CME_ROLL, "us_futures": CME_ROLL}


class DaySpan(NamedTuple):
    """A trading day and the Unix seconds [start, end) whose fills belong to it."""

    day: date
    start: float
    end: float


class SessionTable:
    """Sorted, non-overlapping [open, close) intervals in Unix seconds (lunch breaks split
    out), valid for ``start <= ts < end``: the microsecond "is it open?" of risk."""

    __slots__ = ("_closes", "_opens", "calendar", "end", "start")

    def __init__(
        self,
        opens: Sequence[float],
        closes: Sequence[float],
        calendar: str,
        start: float,
        end: float,
    ) -> None:
        self._opens = list(opens)
        self._closes = list(closes)
        self.calendar = calendar
        self.start = start
        self.end = end

    @classmethod
    def build(cls, name: str, start: date, end: date) -> SessionTable:
        """The sessions dated ``start`` to ``end`` of the process's one table for ``name``."""
        return get_sessions(name).table(start, end)

    def covers(self, ts: float) -> bool:
        return self.start <= ts < self.end

    def is_open(self, ts: float) -> bool:
        i = bisect_right(self._opens, ts) - 1
        return i >= 0 and ts < self._closes[i]

    def next_open(self, ts: float) -> float | None:
        """The first open strictly after ``ts`` (None past the table)."""
        i = bisect_right(self._opens, ts)
        return self._opens[i] if i < len(self._opens) else None

    def current_close(self, ts: float) -> float | None:
        i = bisect_right(self._opens, ts) - 1
        return self._closes[i] if i >= 0 and ts < self._closes[i] else None

    def session_dates(self, tz: str) -> set[date]:
        """Local dates (in ``tz``) on which a session opens."""
        zone = ZoneInfo(tz)
        return {datetime.fromtimestamp(o, zone).date() for o in self._opens}

    def __len__(self) -> int:
        return len(self._opens)


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """One materialisation; replaced whole when the range grows, so readers need no lock."""

    first: date  # sessions dated first..last
    last: date
    days: list[date]
    sessions: dict[date, Session]
    session_opens: list[float]  # per session, lunch included
    session_closes: list[float]
    ends: list[float]  # where each session's trading day ends
    table: SessionTable  # intervals with lunch breaks split out, start..end
    early_closes: frozenset[date]
    holidays: frozenset[date]


class ExchangeSessions:
    """One exchange calendar's sessions and trading days, answered from memory.

    Get it with ``get_sessions(code)``: one per calendar code (aliases share it) per
    process. A question about a date outside the table grows it (rare and slow).
    """

    def __init__(self, name: str, first: date, last: date) -> None:
        self.name = name
        self._lock = threading.Lock()
        cal = _xcal(name, first, last)
        self.tz = ZoneInfo(str(cal.tz))
        self.roll: DayRoll = ROLLS.get(name) or _derived_roll(cal)
        self._snap = self._flatten(cal, first, last)
        self._hit = (0.0, 0.0, date.min)  # the last day located: (start, end, day)

    # -- materialisation -------------------------------------------------------------
    def _flatten(self, cal: Any, first: date, last: date) -> _Snapshot:
        with warnings.catch_warnings():  # pandas deprecations raised inside the library
            warnings.simplefilter("ignore")
            return self._flatten_quietly(cal, first, last)

    def _flatten_quietly(self, cal: Any, first: date, last: date) -> _Snapshot:
        import pandas as pd

        frame = cal.schedule

        def seconds(column: str) -> list[float | None]:
            return [None if pd.isna(v) else v.timestamp() for v in frame[column].tolist()]

        s_opens, s_closes = seconds("open"), seconds("close")
        b_starts, b_ends = seconds("break_start"), seconds("break_end")
        days: list[date] = list(frame.index.date)
        sessions: dict[date, Session] = {}
        opens: list[float] = []
        closes: list[float] = []
        for i, day in enumerate(days):
            o, c, bs, be = s_opens[i], s_closes[i], b_starts[i], b_ends[i]
            assert o is not None and c is not None
            if bs is not None and be is not None:
                opens += [o, be]
                closes += [bs, c]
            else:
                opens.append(o)
                closes.append(c)
            sessions[day] = Session(day, _utc(o), _utc(c), _utc_or_none(bs), _utc_or_none(be))
        roll = self.roll
        start, end = roll.start(first), roll.start(last + timedelta(days=1))
        weekmask = str(cal.weekmask)
        every = (first + timedelta(days=i) for i in range((last - first).days + 1))
        return _Snapshot(
            first=first,
            last=last,
            days=days,
            sessions=sessions,
            session_opens=[o for o in s_opens if o is not None],
            session_closes=[c for c in s_closes if c is not None],
            ends=[roll.start(d + timedelta(days=1)) for d in days],
            table=SessionTable(opens, closes, self.name, start, end),
            early_closes=frozenset(ts.date() for ts in cal.early_closes),
            holidays=frozenset(
                d for d in every if weekmask[d.weekday()] == "1" and d not in sessions
            ),
        )

    def cover(self, first: date, last: date) -> bool:
        """Grow the table to hold sessions dated ``first`` to ``last``; False when the
        calendar cannot be evaluated that far (exchange_calendars' bounds)."""
        snap = self._snap
        if snap.first <= first and last <= snap.last:
            return True
        with self._lock:
            snap = self._snap
            lo, hi = min(first, snap.first), max(last, snap.last)
            if (lo, hi) == (snap.first, snap.last):
                return True
            try:
                cal = _xcal(self.name, lo, hi)
            except ValueError:  # before the calendar's first evaluable date
                return False
            self._snap = self._flatten(cal, lo, hi)
            return True

    def _cover_ts(self, ts: float) -> None:
        table = self._snap.table
        if not table.covers(ts):
            day = self.roll.label(ts)
            self.cover(day - MARGIN, day + MARGIN)

    # -- views ---------------------------------------------------------------------
    @property
    def first(self) -> date:
        return self._snap.first

    @property
    def last(self) -> date:
        return self._snap.last

    def table(self, first: date, last: date) -> SessionTable:
        """Risk's fixed view: sessions dated ``first`` to ``last`` (it fails closed beyond)."""
        self.cover(first, last)
        snap = self._snap
        i, j = bisect_left(snap.days, first), bisect_right(snap.days, last)
        opens: list[float] = []
        closes: list[float] = []
        for s in (snap.sessions[d] for d in snap.days[i:j]):
            if s.break_start is not None and s.break_end is not None:
                opens += [s.open.timestamp(), s.break_end.timestamp()]
                closes += [s.break_start.timestamp(), s.close.timestamp()]
            else:
                opens.append(s.open.timestamp())
                closes.append(s.close.timestamp())
        start, end = self.roll.start(first), self.roll.start(last + timedelta(days=1))
        return SessionTable(opens, closes, self.name, start, end)

    # -- open or closed (Unix seconds) ---------------------------------------------------
    def is_open(self, ts: float) -> bool:
        self._cover_ts(ts)
        return self._snap.table.is_open(ts)

    def next_open(self, ts: float) -> float | None:
        """The first open strictly after ``ts`` (a lunch break's end counts)."""
        self._cover_ts(ts)
        nxt = self._snap.table.next_open(ts)
        if nxt is None and self.cover(self._snap.first, self._snap.last + MARGIN):
            nxt = self._snap.table.next_open(ts)
        return nxt

    def current_close(self, ts: float) -> float | None:
        """When the interval open at ``ts`` closes (a lunch break's start counts)."""
        self._cover_ts(ts)
        return self._snap.table.current_close(ts)

    # -- sessions by date -------------------------------------------------------------------
    def session(self, day: date) -> Session | None:
        """The session on an exchange-local date, or None (weekend, holiday)."""
        self.cover(day, day)
        return self._snap.sessions.get(day)

    def next_session(self, day: date) -> Session | None:
        """The first session on or after ``day``."""
        self.cover(day, day)
        snap = self._snap
        i = bisect_left(snap.days, day)
        if i == len(snap.days) and self.cover(snap.first, day + MARGIN):
            snap = self._snap
            i = bisect_left(snap.days, day)
        return snap.sessions[snap.days[i]] if i < len(snap.days) else None

    def session_at(self, ts: float) -> Session | None:
        """The session open at ``ts`` (outside its lunch break), or None."""
        if not self.is_open(ts):
            return None
        snap = self._snap
        i = bisect_right(snap.session_opens, ts) - 1
        return snap.sessions[snap.days[i]]

    def session_dates(self) -> list[date]:
        """Every session date in the table, in order."""
        return list(self._snap.days)

    def is_session(self, day: date) -> bool:
        return self.session(day) is not None

    def is_early_close(self, day: date) -> bool:
        """A half day (e.g. XNYS 2026-11-27 closes at 13:00 New York)."""
        self.cover(day, day)
        return day in self._snap.early_closes

    def is_holiday(self, day: date) -> bool:
        """A weekday of the exchange's week without a session."""
        self.cover(day, day)
        return day in self._snap.holidays

    # -- the trading day ----------------------------------------------------------------
    def trading_day(self, ts: float) -> date:
        """The session date ``ts`` belongs to (see the module docstring for the rule)."""
        lo, hi, day = self._hit
        if lo <= ts < hi:
            return day
        return self._locate(ts)[2]

    def day_span(self, ts: float) -> DaySpan:
        """``ts``'s trading day with its [start, end): roll over when the clock passes end."""
        lo, hi, day = self._hit
        if not lo <= ts < hi:
            lo, hi, day = self._locate(ts)
        return DaySpan(day, lo, hi)

    def _locate(self, ts: float) -> tuple[float, float, date]:
        """Bisect for ``ts``'s day and remember it (the next fill is most likely the same day)."""
        self._cover_ts(ts)
        snap = self._snap
        i = bisect_right(snap.ends, ts)
        if i == len(snap.days) and self.cover(snap.first, snap.last + MARGIN):
            snap = self._snap  # after the last session in the table: the next is later
            i = bisect_right(snap.ends, ts)
        if not snap.table.covers(ts) or i == len(snap.days):
            label = self.roll.label(ts)  # beyond what the calendar can evaluate
            nxt = label + timedelta(days=1)
            return self.roll.start(label), self.roll.start(nxt), label
        hit = (snap.ends[i - 1] if i > 0 else snap.table.start, snap.ends[i], snap.days[i])
        self._hit = hit
        return hit

    def bounds(self, first: date, last: date) -> tuple[float, float]:
        """Unix seconds [lo, hi) of every time whose trading day is in [first, last]."""
        self.cover(first - timedelta(days=14), last + timedelta(days=14))
        snap = self._snap
        i, j = bisect_left(snap.days, first), bisect_right(snap.days, last) - 1
        lo = snap.ends[i - 1] if i > 0 else snap.table.start
        return (lo, snap.ends[j]) if i <= j < len(snap.ends) else (lo, lo)


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _utc_or_none(ts: float | None) -> datetime | None:
    return None if ts is None else _utc(ts)


def _xcal(name: str, first: date, last: date) -> Any:
    with warnings.catch_warnings():  # pandas deprecations raised inside the library
        warnings.simplefilter("ignore")
        return xc.get_calendar(name, start=first.isoformat(), end=last.isoformat())


def _derived_roll(cal: Any) -> DayRoll:
    """Midnight exchange-local; the regular close for sessions that open the evening before."""
    tz = str(cal.tz)
    if cal.open_offset == -1:
        return DayRoll(tz, cal.close_times[-1][1], evening=True)
    return DayRoll(tz)


# -- the process's tables ------------------------------------------------------------------
_TABLES: dict[str, ExchangeSessions] = {}
_TABLES_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def calendar_names() -> frozenset[str]:
    """Every calendar code (and alias) exchange_calendars knows, for validation."""
    return frozenset(xc.get_calendar_names(include_aliases=True))


def get_sessions(calendar: str) -> ExchangeSessions:
    """The process's one table for a calendar code or alias (built on first use, ~0.5 s)."""
    found = _TABLES.get(calendar)
    if found is not None:
        return found
    if calendar not in calendar_names():
        raise ValueError(f"unknown exchange calendar {calendar!r} (e.g. XNYS, CMES, 24/7)")
    with _TABLES_LOCK:
        code = xc.resolve_alias(calendar)
        found = _TABLES.get(code)
        if found is None:
            today = datetime.now(UTC).date()
            found = ExchangeSessions(code, today - PAST, today + FUTURE)
        _TABLES[code] = _TABLES[calendar] = found
        return found


def trading_day(ts: float, calendar: str) -> date:
    """The trading day of a fill at ``ts`` (Unix seconds) on ``calendar``: its session date.

    Constant time while the day does not change (the last day's span is cached), a bisect
    otherwise; no pandas after the table is built.
    """
    table = _TABLES.get(calendar)
    if table is None:
        table = get_sessions(calendar)
    return table.trading_day(ts)


def day_span(ts: float, calendar: str) -> DaySpan:
    """``trading_day`` with the Unix seconds [start, end) of that day on ``calendar``."""
    return get_sessions(calendar).day_span(ts)


def day_roll(calendar: str) -> DayRoll:
    """When ``calendar``'s trading day rolls over."""
    return get_sessions(calendar).roll
