"""Risk's view of exchange sessions: the one table in ``app.sessions``.

``SessionTable`` (a fixed range of the process's materialisation, so a check beyond it
fails closed) lives in ``app.sessions``; it is re-exported here until the risk engine
reads ``app.sessions`` directly. ``daily_instants`` is risk's own roll-over schedule.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from app.sessions import SessionTable

__all__ = ["SessionTable", "daily_instants"]


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
