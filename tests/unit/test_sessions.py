"""app/sessions: the one session table per calendar and the one trading-day rule."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from app.kairos.calendar import get_calendar
from app.sessions import (
    CME_ROLL,
    DaySpan,
    SessionTable,
    day_roll,
    day_span,
    get_sessions,
    trading_day,
)

NY = ZoneInfo("America/New_York")
TUE, WED, THU, FRI = date(2026, 11, 24), date(2026, 11, 25), date(2026, 11, 26), date(2026, 11, 27)
SAT, SUN, MON = date(2026, 11, 28), date(2026, 11, 29), date(2026, 11, 30)


def ny(day: date, hh: int, mm: int = 0) -> float:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=NY).timestamp()


def utc(day: date, hh: int, mm: int = 0) -> float:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=UTC).timestamp()


def test_equity_fills_pre_regular_and_after_market_are_the_session_date() -> None:
    days = [trading_day(ts, "XNYS") for ts in (ny(TUE, 8), ny(TUE, 12), ny(TUE, 19))]
    assert days == [TUE, TUE, TUE]
    assert trading_day(ny(WED, 10), "XNYS") == WED
    assert trading_day(ny(TUE, 23, 59), "XNYS") == TUE  # midnight New York, not UTC
    assert trading_day(ny(date(2026, 11, 20), 19), "XNYS") == date(2026, 11, 20)  # Fri 19:00
    assert trading_day(ny(date(2026, 11, 21), 12), "XNYS") == date(2026, 11, 23)  # Sat: Mon


def test_a_holiday_fill_belongs_to_the_next_session() -> None:
    xnys = get_sessions("XNYS")
    assert xnys.is_holiday(THU) and not xnys.is_session(THU)
    assert xnys.is_early_close(FRI) and xnys.session(FRI) is not None
    assert trading_day(ny(THU, 12), "XNYS") == FRI  # Thanksgiving
    assert trading_day(ny(WED, 19), "XNYS") == WED
    # Friday's day runs from Thursday 00:00 (Wednesday's ended) to Saturday 00:00
    assert day_span(ny(FRI, 12), "XNYS") == DaySpan(FRI, ny(THU, 0), ny(SAT, 0))


def test_cme_rolls_at_18_new_york_and_the_evening_belongs_to_the_next_day() -> None:
    assert day_roll("CME") == day_roll("us_futures") == CME_ROLL
    assert trading_day(ny(date(2026, 11, 22), 18, 30), "CMES") == date(2026, 11, 23)  # Sun
    assert trading_day(ny(MON, 17, 59), "CME") == MON
    assert trading_day(ny(MON, 18), "CME") == date(2026, 12, 1)
    assert trading_day(ny(FRI, 18, 30), "CMES") == MON  # Friday evening: Monday's
    assert trading_day(ny(TUE, 8), "CMES") == TUE
    # across the spring DST change the roll stays at 18:00 New York
    assert trading_day(ny(date(2026, 3, 8), 17, 59), "CMES") == date(2026, 3, 9)
    assert day_span(ny(date(2026, 3, 8), 18, 30), "CMES").start == ny(date(2026, 3, 6), 18)


def test_24_7_rolls_at_midnight_utc() -> None:
    assert trading_day(utc(SAT, 23, 59), "24/7") == SAT
    assert trading_day(utc(SUN, 0, 1), "24/7") == SUN
    assert day_span(utc(SAT, 12), "24/7") == DaySpan(SAT, utc(SAT, 0), utc(SUN, 0))


def test_dates_outside_the_table_grow_it_or_fall_back_to_the_local_date() -> None:
    assert trading_day(ny(date(2019, 7, 4), 12), "XNYS") == date(2019, 7, 5)
    assert trading_day(ny(date(2035, 12, 25), 12), "XNYS") == date(2035, 12, 26)
    before_bound = datetime(1990, 1, 6, 12, tzinfo=ZoneInfo("Asia/Tokyo")).timestamp()
    assert trading_day(before_bound, "XTKS") == date(1990, 1, 6)  # XTKS starts in 1997


def test_unknown_calendar() -> None:
    with pytest.raises(ValueError, match="unknown exchange calendar"):
        trading_day(0.0, "NOPE")


def test_one_table_per_calendar_for_risk_and_kairos() -> None:
    xnys = get_sessions("XNYS")
    assert get_sessions("NYSE") is xnys and get_sessions("CME") is get_sessions("CMES")
    assert get_calendar("XNYS").sessions is xnys
    risk = SessionTable.build("XNYS", date(2026, 11, 20), date(2026, 12, 31))
    kairos = get_calendar("XNYS")
    for ts in (ny(WED, 15, 59), ny(WED, 16), ny(THU, 12), ny(FRI, 12, 59), ny(FRI, 13)):
        when = datetime.fromtimestamp(ts, UTC)
        assert risk.is_open(ts) is kairos.is_open(when) is xnys.is_open(ts)
    assert risk.next_open(ny(THU, 12)) == ny(FRI, 9, 30)
    assert risk.current_close(ny(FRI, 12)) == ny(FRI, 13)
    assert not risk.covers(ny(date(2027, 1, 5), 12))  # risk's view fails closed beyond


def test_lunch_breaks() -> None:
    hk = ZoneInfo("Asia/Hong_Kong")
    day = date(2026, 12, 7)

    def at(hh: int) -> float:
        return datetime(day.year, day.month, day.day, hh, tzinfo=hk).timestamp()

    xhkg = get_sessions("XHKG")
    assert xhkg.is_open(at(11)) and not xhkg.is_open(at(12)) and xhkg.is_open(at(13))
    assert xhkg.current_close(at(11)) == at(12) and xhkg.next_open(at(12)) == at(13)
    session = xhkg.session_at(at(13))
    assert session is not None and session.day == day and xhkg.session_at(at(12)) is None


def test_bounds_cover_the_days_fills() -> None:
    xnys = get_sessions("XNYS")
    lo, hi = xnys.bounds(MON, MON)
    assert (lo, hi) == (ny(SAT, 0), ny(date(2026, 12, 1), 0))  # the weekend is Monday's
    assert xnys.bounds(THU, THU)[0] == xnys.bounds(THU, THU)[1]  # no session: no fills
