"""What the simulated exchange lists: option expirations on the XNYS calendar and strikes.

Expirations, for the day the clock is on (New York):

* weeklies: every Friday of the next 8 weeks;
* monthlies: the third Friday of each month, 12 months out;
* dailies (Monday to Friday of the next week) for the index ETFs in ``DAILY_ROOTS``;

a Friday that is no session (Good Friday 2027-03-26) expires the session before it; a
daily on a holiday is not listed. An expiration is listed until its session closes.

Strikes are fixed per expiration and day: a fine step near the money and a coarse one
out to the wings (by price level, like listed equity options), spanning the underlying's
daily closes from the expiration's listing day to yesterday (+-10 % fine, +-30 % in
all), so a listed strike never disappears while the underlying moves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache
from zoneinfo import ZoneInfo

from app.sessions import get_sessions

NEW_YORK = ZoneInfo("America/New_York")
CALENDAR = "XNYS"
DAILY_ROOTS = frozenset({"SPY", "QQQ"})
WEEKLY_DAYS = 56  # weeklies listed 8 weeks ahead
MONTHLY_DAYS = 366  # monthlies 12 months ahead
DAILY_DAYS = 7
FRIDAY = 4
FINE_RANGE = 0.10
FULL_RANGE = 0.30


class Kind(StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"

    @property
    def horizon(self) -> int:
        """How many days before expiry a series of this kind is listed."""
        return {Kind.DAILY: DAILY_DAYS, Kind.WEEKLY: WEEKLY_DAYS, Kind.MONTHLY: MONTHLY_DAYS}[self]


@dataclass(frozen=True, slots=True)
class Listing:
    """One listed expiration: its date, kind, the day it was listed and its close."""

    expiration: date
    kind: Kind
    listed: date
    close: float  # epoch seconds of the expiration session's close (last trading moment)


def new_york_date(ts: float) -> date:
    return datetime.fromtimestamp(ts, NEW_YORK).date()


def third_friday(year: int, month: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(FRIDAY - first.weekday()) % 7 + 14)


def _session_on_or_before(day: date, limit: int = 7) -> date | None:
    sessions = get_sessions(CALENDAR)
    for back in range(limit):
        candidate = day - timedelta(days=back)
        if sessions.is_session(candidate):
            return candidate
    return None


def _candidates(today: date, dailies: bool) -> dict[date, Kind]:
    """Nominal expirations (before holiday shifts) and their kind; monthly wins."""
    out: dict[date, Kind] = {}
    if dailies:
        for i in range(DAILY_DAYS + 1):
            day = today + timedelta(days=i)
            if day.weekday() < 5:
                out[day] = Kind.DAILY
    friday = today + timedelta(days=(FRIDAY - today.weekday()) % 7)
    while friday <= today + timedelta(days=WEEKLY_DAYS):
        out[friday] = Kind.WEEKLY
        friday += timedelta(days=7)
    year, month = today.year, today.month
    for _ in range(13):
        monthly = third_friday(year, month)
        if today <= monthly <= today + timedelta(days=MONTHLY_DAYS):
            out[monthly] = Kind.MONTHLY
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def listings(now: float, root: str) -> list[Listing]:
    """The expirations listed at ``now`` for ``root``, soonest first."""
    day = _day_listings(new_york_date(now), root in DAILY_ROOTS)
    return [x for x in day if x.close > now]


@lru_cache(maxsize=32)
def _day_listings(today: date, dailies: bool) -> tuple[Listing, ...]:
    """Every expiration listed on ``today`` (some close before the day is over)."""
    sessions = get_sessions(CALENDAR)
    found: dict[date, Listing] = {}
    for nominal, kind in sorted(_candidates(today, dailies).items()):
        if kind is Kind.DAILY:
            expiry: date | None = nominal if sessions.is_session(nominal) else None
        else:
            expiry = _session_on_or_before(nominal)
        session = None if expiry is None else sessions.session(expiry)
        if expiry is None or session is None:
            continue
        earlier = found.get(expiry)
        if earlier is not None and earlier.kind.horizon >= kind.horizon:
            continue
        listed = nominal - timedelta(days=kind.horizon)
        found[expiry] = Listing(expiry, kind, listed, session.close.timestamp())
    return tuple(found[d] for d in sorted(found))


# -- strikes ------------------------------------------------------------------------------
def strike_steps(price: float, fund: bool) -> tuple[Decimal, Decimal]:
    """(fine, coarse) strike increments at a price level: index ETFs list $1 strikes
    near the money; single stocks 0.5 / 1 / 2.5 / 5 / 10 as the price rises, twice as wide in the wings."""
    if fund:
        return (Decimal("0.5"), Decimal(1)) if price < 50 else (Decimal(1), Decimal(5))
    for limit, fine, coarse in (
        (25, "0.5", "1"),
        (100, "1", "2.5"),
        (500, "2.5", "5"),
        (1000, "5", "10"),
    ):
        if price < limit:
            return Decimal(fine), Decimal(coarse)
    return Decimal(10), Decimal(50)


def _multiples(step: Decimal, lo: float, hi: float) -> set[Decimal]:
    first = math.ceil(Decimal(str(lo)) / step)
    last = math.floor(Decimal(str(hi)) / step)
    return {step * i for i in range(max(first, 1), last + 1)}


def strike_grid(reference: float, low: float, high: float, fund: bool) -> list[Decimal]:
    """Strikes for closes between ``low`` and ``high``; the steps follow ``reference``
    (the close on the listing day), so they do not change with the price."""
    fine, coarse = strike_steps(reference, fund)
    near = _multiples(fine, low * (1 - FINE_RANGE), high * (1 + FINE_RANGE))
    wings = _multiples(coarse, low * (1 - FULL_RANGE), high * (1 + FULL_RANGE))
    return sorted(_tidy(s) for s in near | wings)


def _tidy(strike: Decimal) -> Decimal:
    """``590`` rather than ``590.0``, ``592.5`` rather than ``592.50``."""
    if strike == strike.to_integral_value():
        return strike.quantize(Decimal(1))
    return strike.normalize()
