"""Exchange sessions from ``exchange_calendars``, flattened into plain UTC datetimes.

The scheduler asks "is the exchange open at t?" and "when is the next open?" many times
per job per day; answering from a dict of Python datetimes keeps pandas off that path.
Holidays and early closes come from the upstream calendar, so 2026-11-26 (Thanksgiving)
has no session and 2026-11-27 closes at 13:00 New York time.
"""

from __future__ import annotations

import bisect
import warnings
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import exchange_calendars as xc

#: How far around today a calendar is materialised; queries outside re-materialise.
PAST = timedelta(days=3 * 366)
FUTURE = timedelta(days=3 * 366)


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


def calendar_names() -> set[str]:
    """Every calendar code (and alias) exchange_calendars knows, for job validation."""
    return set(xc.get_calendar_names(include_aliases=True))


def _utc(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC)


class TradingCalendar:
    """Sessions of one exchange, answered from memory."""

    def __init__(self, name: str, *, around: date | None = None) -> None:
        self.name = name
        self.tz = ZoneInfo("UTC")
        self._sessions: dict[date, Session] = {}
        self._days: list[date] = []
        self._start = self._end = date.min
        self._load(around or datetime.now(UTC).date())

    def _load(self, around: date) -> None:
        start, end = around - PAST, around + FUTURE
        with warnings.catch_warnings():
            # exchange_calendars 4.x trips a pandas 3 deprecation warning on every build
            warnings.filterwarnings("ignore", message="Series.values returning")
            cal = xc.get_calendar(self.name, start=start.isoformat(), end=end.isoformat())
        self.tz = ZoneInfo(str(cal.tz))
        frame = cal.schedule
        opens = frame["open"].astype("int64").tolist()
        closes = frame["close"].astype("int64").tolist()
        has_break = (~frame["break_start"].isna()).tolist()
        b_starts = frame["break_start"].tolist()
        b_ends = frame["break_end"].tolist()
        sessions: dict[date, Session] = {}
        for i, day in enumerate(frame.index.date):
            brk_s = b_starts[i].to_pydatetime() if has_break[i] else None
            brk_e = b_ends[i].to_pydatetime() if has_break[i] else None
            sessions[day] = Session(day, _utc(opens[i]), _utc(closes[i]), brk_s, brk_e)
        self._sessions = sessions
        self._days = sorted(sessions)
        self._start, self._end = start, end

    def _cover(self, day: date) -> None:
        if not self._start <= day <= self._end:
            self._load(day)

    def local_date(self, t: datetime) -> date:
        return t.astimezone(self.tz).date()

    def session(self, day: date) -> Session | None:
        """The session on an exchange-local date, or None (weekend, holiday)."""
        self._cover(day)
        return self._sessions.get(day)

    def session_at(self, t: datetime) -> Session | None:
        """The session open at ``t`` (UTC-aware), or None."""
        sess = self.session(self.local_date(t))
        return sess if sess is not None and sess.contains(t) else None

    def is_open(self, t: datetime) -> bool:
        return self.session_at(t) is not None

    def next_session(self, day: date) -> Session | None:
        """The first session on or after ``day``."""
        self._cover(day)
        i = bisect.bisect_left(self._days, day)
        if i == len(self._days):
            self._load(day + FUTURE)
            i = bisect.bisect_left(self._days, day)
            if i == len(self._days):
                return None
        return self._sessions[self._days[i]]

    def next_open(self, t: datetime) -> datetime | None:
        """The first moment at or after ``t`` when the exchange is open."""
        day = self.local_date(t)
        for _ in range(400):  # bounded: a year of closed days is a broken calendar
            sess = self.next_session(day)
            if sess is None:
                return None
            if sess.close > t:
                if sess.break_start and sess.break_end and sess.break_start <= t < sess.break_end:
                    return sess.break_end
                return max(sess.open, t)
            day = sess.day + timedelta(days=1)
        return None


@lru_cache(maxsize=16)
def get_calendar(name: str) -> TradingCalendar:
    """One materialised calendar per exchange per process."""
    return TradingCalendar(name)
