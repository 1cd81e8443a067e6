"""Exchange sessions as a precomputed table, so "is the market open?" is one bisect.

exchange_calendars (and pandas) are far too slow for a microsecond check, so the
open/close instants (UTC seconds, half days and holidays included, lunch breaks
split out) are materialised once at start-up for a bounded range.
"""

from __future__ import annotations

import warnings
from bisect import bisect_right
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

DAY = 86_400.0


class SessionTable:
    """Sorted, non-overlapping [open, close) intervals in Unix seconds."""

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
        self.start = start  # table valid for start <= ts < end
        self.end = end

    @classmethod
    def build(cls, name: str, start: date, end: date) -> SessionTable:
        opens, closes = _intervals(name, start.isoformat(), end.isoformat())
        lo = datetime.combine(start, time(), tzinfo=UTC).timestamp()
        hi = datetime.combine(end + timedelta(days=1), time(), tzinfo=UTC).timestamp()
        return cls(opens, closes, name, lo, hi)

    def covers(self, ts: float) -> bool:
        return self.start <= ts < self.end

    def is_open(self, ts: float) -> bool:
        i = bisect_right(self._opens, ts) - 1
        return i >= 0 and ts < self._closes[i]

    def next_open(self, ts: float) -> float | None:
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


@lru_cache(maxsize=8)
def _intervals(name: str, start: str, end: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    import exchange_calendars as xcals

    with warnings.catch_warnings():  # pandas deprecations raised inside the library
        warnings.simplefilter("ignore")
        cal = xcals.get_calendar(name, start=start, end=end)
    opens: list[float] = []
    closes: list[float] = []
    breaks_start = cal.break_starts
    breaks_end = cal.break_ends
    for session in cal.sessions:
        o = cal.opens[session].timestamp()
        c = cal.closes[session].timestamp()
        bs, be = breaks_start[session], breaks_end[session]
        if bs is not None and be is not None and bs == bs and be == be:  # NaT != NaT
            opens += [o, be.timestamp()]
            closes += [bs.timestamp(), c]
        else:
            opens.append(o)
            closes.append(c)
    return tuple(opens), tuple(closes)


def daily_instants(
    tz: str, at: str, start: date, days: int, keep: Callable[[date], bool] | None = None
) -> list[float]:
    """``at`` (HH:MM) local time in ``tz`` on each day ``keep`` accepts, as Unix seconds.

    Built with zoneinfo so DST shifts are right; the engine bisects this list to know
    when the trading day (and the daily loss budget) rolls over.
    """
    zone = ZoneInfo(tz)
    hh, mm = (int(p) for p in at.split(":"))
    out = []
    for i in range(days):
        day = start + timedelta(days=i)
        if keep is None or keep(day):
            out.append(datetime.combine(day, time(hh, mm), tzinfo=zone).timestamp())
    return out
