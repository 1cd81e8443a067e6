"""Kairos's calendar: the process's one session table (``app.sessions``) in datetimes.

The scheduler asks "is the exchange open at t?" and "when is the next open?" many times
per job per day; both are a bisect of the shared table. Holidays and early closes come
from the upstream calendar, so 2026-11-26 (Thanksgiving) has no session and 2026-11-27
closes at 13:00 New York time.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from functools import lru_cache

from app.sessions import FUTURE, PAST, Session, calendar_names, get_sessions

__all__ = ["Session", "TradingCalendar", "calendar_names", "get_calendar"]


class TradingCalendar:
    """Sessions of one exchange, in UTC-aware datetimes."""

    def __init__(self, name: str, *, around: date | None = None) -> None:
        self.name = name
        self.sessions = get_sessions(name)
        self.tz = self.sessions.tz
        if around is not None:
            self.sessions.cover(around - PAST, around + FUTURE)

    def local_date(self, t: datetime) -> date:
        return t.astimezone(self.tz).date()

    def session(self, day: date) -> Session | None:
        """The session on an exchange-local date, or None (weekend, holiday)."""
        return self.sessions.session(day)

    def session_at(self, t: datetime) -> Session | None:
        """The session open at ``t`` (UTC-aware), or None."""
        return self.sessions.session_at(t.timestamp())

    def is_open(self, t: datetime) -> bool:
        return self.sessions.is_open(t.timestamp())

    def next_session(self, day: date) -> Session | None:
        """The first session on or after ``day``."""
        return self.sessions.next_session(day)

    def next_open(self, t: datetime) -> datetime | None:
        """The first moment at or after ``t`` when the exchange is open."""
        ts = t.timestamp()
        if self.sessions.is_open(ts):
            return t
        nxt = self.sessions.next_open(ts)
        return None if nxt is None else datetime.fromtimestamp(nxt, UTC)


@lru_cache(maxsize=16)
def get_calendar(name: str) -> TradingCalendar:
    """One calendar per exchange per process (all of them views of ``app.sessions``)."""
    return TradingCalendar(name)
