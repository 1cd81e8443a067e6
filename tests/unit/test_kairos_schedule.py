"""Calendar and schedule: holidays, half days, DST weeks, weekends, session policies."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from app.kairos.calendar import get_calendar
from app.kairos.jobs import SessionPolicy, SessionSpec
from app.kairos.schedule import JobSchedule, job_jitter

NY = ZoneInfo("America/New_York")
XNYS = get_calendar("XNYS")
REGULAR = SessionSpec(policy=SessionPolicy.REGULAR)
ALWAYS = SessionSpec(policy=SessionPolicy.ALWAYS)
AFTER_CLOSE_30 = SessionSpec(policy=SessionPolicy.AFTER_CLOSE, offset_minutes=30)


def ny(*args: int) -> datetime:
    return datetime(*args, tzinfo=NY).astimezone(UTC)  # type: ignore[misc]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def every5(session: SessionSpec = REGULAR) -> JobSchedule:
    return JobSchedule("*/5 * * * *", XNYS, session)


def test_calendar_knows_thanksgiving_and_the_half_day_after() -> None:
    assert XNYS.session(date(2026, 11, 26)) is None
    friday = XNYS.session(date(2026, 11, 27))
    assert friday is not None
    assert friday.open == ny(2026, 11, 27, 9, 30) and friday.close == ny(2026, 11, 27, 13, 0)
    assert XNYS.is_open(ny(2026, 11, 27, 12, 59)) and not XNYS.is_open(ny(2026, 11, 27, 13, 0))
    assert XNYS.session(date(2026, 11, 28)) is None  # Saturday


def test_regular_job_skips_the_holiday_and_stops_at_the_early_close() -> None:
    fires = list(every5().fires(ny(2026, 11, 25, 0, 0), ny(2026, 11, 28, 0, 0)))
    by_day: dict[date, list[datetime]] = {}
    for f in fires:
        by_day.setdefault(f.astimezone(NY).date(), []).append(f)
    assert sorted(by_day) == [date(2026, 11, 25), date(2026, 11, 27)]
    assert len(by_day[date(2026, 11, 25)]) == 78  # 09:30 .. 15:55
    assert by_day[date(2026, 11, 25)][0] == ny(2026, 11, 25, 9, 30)
    assert by_day[date(2026, 11, 25)][-1] == ny(2026, 11, 25, 15, 55)
    assert len(by_day[date(2026, 11, 27)]) == 42  # 09:30 .. 12:55
    assert by_day[date(2026, 11, 27)][-1] == ny(2026, 11, 27, 12, 55)


def test_weekend_jumps_to_monday_open() -> None:
    assert every5().next_fire(ny(2026, 11, 20, 15, 55)) == ny(2026, 11, 23, 9, 30)
    assert every5().next_fire(ny(2026, 11, 21, 12, 0)) == utc(2026, 11, 23, 14, 30)


def test_dst_weeks_keep_new_york_wall_time() -> None:
    sched = every5()
    # Spring forward on Sunday 2026-03-08: 09:30 New York is 14:30Z before, 13:30Z after.
    assert sched.next_fire(utc(2026, 3, 6, 0, 0)) == utc(2026, 3, 6, 14, 30)
    assert sched.next_fire(utc(2026, 3, 7, 0, 0)) == utc(2026, 3, 9, 13, 30)
    # Fall back on Sunday 2026-11-01: 13:30Z on Friday, 14:30Z on Monday.
    assert sched.next_fire(utc(2026, 10, 30, 0, 0)) == utc(2026, 10, 30, 13, 30)
    assert sched.next_fire(utc(2026, 10, 31, 0, 0)) == utc(2026, 11, 2, 14, 30)
    last_monday = list(sched.fires(utc(2026, 11, 2, 0, 0), utc(2026, 11, 3, 0, 0)))[-1]
    assert last_monday == utc(2026, 11, 2, 20, 55)  # 15:55 EST


def test_always_policy_dst_gap_is_skipped_and_repeat_runs_once() -> None:
    gap = JobSchedule("30 2 * * *", XNYS, ALWAYS)  # 02:30 does not exist on 2026-03-08
    fires = list(gap.fires(ny(2026, 3, 7, 0, 0), ny(2026, 3, 10, 0, 0)))
    assert [f.astimezone(NY).date() for f in fires] == [date(2026, 3, 7), date(2026, 3, 9)]
    repeat = JobSchedule("30 1 * * *", XNYS, ALWAYS)  # 01:30 happens twice on 2026-11-01
    fires = list(repeat.fires(utc(2026, 11, 1, 0, 0), utc(2026, 11, 2, 0, 0)))
    assert fires == [utc(2026, 11, 1, 5, 30)]  # the first (EDT) occurrence only
    # Starting inside the repeated hour does not fire the same wall time again.
    assert repeat.next_fire(utc(2026, 11, 1, 6, 0)) == utc(2026, 11, 2, 6, 30)


def test_after_close_rebalance_on_trading_days_only() -> None:
    sched = JobSchedule("30 16 * * *", XNYS, AFTER_CLOSE_30)
    fires = list(sched.fires(ny(2026, 11, 24, 17, 0), ny(2026, 12, 1, 0, 0)))
    assert fires == [
        ny(2026, 11, 25, 16, 30),
        ny(2026, 11, 27, 16, 30),  # half day still rebalances after its 13:00 close
        ny(2026, 11, 30, 16, 30),
    ]
    # A 14:00 cron is after close+30 only on the half day.
    early = JobSchedule("0 14 * * *", XNYS, AFTER_CLOSE_30)
    assert early.next_fire(ny(2026, 11, 24, 0, 0)) == ny(2026, 11, 27, 14, 0)


def test_good_friday_and_independence_day_observed() -> None:
    assert every5().next_fire(ny(2026, 4, 2, 16, 0)) == ny(2026, 4, 6, 9, 30)
    assert every5().next_fire(ny(2026, 7, 2, 16, 0)) == ny(2026, 7, 6, 9, 30)


def test_cron_that_never_meets_the_session_gives_none() -> None:
    assert JobSchedule("0 3 * * *", XNYS, REGULAR).next_fire(utc(2026, 1, 5, 0, 0)) is None


CRONS = ["*/5 * * * *", "*/15 * * * 1-5", "0 * * * *", "7,37 9-16 * * *", "59 15 * * *"]


@settings(max_examples=200, deadline=None)
@given(
    cron=st.sampled_from(CRONS),
    start=st.datetimes(
        min_value=datetime(2024, 1, 1), max_value=datetime(2028, 6, 1), timezones=st.just(UTC)
    ),
    jitter=st.floats(min_value=0, max_value=30),
)
def test_regular_job_never_fires_outside_the_session(
    cron: str, start: datetime, jitter: float
) -> None:
    sched = JobSchedule(cron, XNYS, REGULAR, jitter=timedelta(seconds=jitter))
    t = start
    for _ in range(5):
        nxt = sched.next_fire(t)
        assert nxt is not None and nxt > t
        assert XNYS.is_open(nxt) and XNYS.is_open(sched.due(nxt))
        t = nxt


def test_jitter_is_deterministic_small_and_per_job() -> None:
    a = job_jitter("momentum", 10)
    assert a == job_jitter("momentum", 10)
    assert timedelta(0) <= a < timedelta(seconds=10)
    assert job_jitter("momentum", 10) != job_jitter("mean_reversion", 10)
    assert job_jitter("x", 0) == timedelta(0)


def test_runnable_respects_grace_and_session() -> None:
    sched = JobSchedule("*/5 * * * *", XNYS, REGULAR, grace=timedelta(seconds=120))
    nominal = ny(2026, 11, 25, 10, 0)
    assert sched.runnable(nominal, nominal + timedelta(seconds=119))
    assert not sched.runnable(nominal, nominal + timedelta(seconds=121))
    late_in_day = ny(2026, 11, 25, 15, 59)
    assert not sched.runnable(late_in_day, ny(2026, 11, 25, 16, 0, 30))  # session closed meanwhile
