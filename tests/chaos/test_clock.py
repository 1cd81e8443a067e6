"""The clock at the session boundaries, on a half day and across both DST switches.

The risk engine's market-hours check, with an injected clock, to the second: open at
09:30:00 America/New_York, closed at 09:29:59; open at 15:59:59, closed at 16:00:00;
13:00 close on the day after Thanksgiving; the same wall times on the Mondays after
the switches (2026-03-09: EDT, UTC-4; 2026-11-02: EST, UTC-5) and the Fridays before.

Kairos' schedule across the same weeks (next fire keeps 09:30 New York wall time,
half days end at 13:00) is covered by tests/unit/test_kairos_schedule.py
(``test_dst_weeks_keep_new_york_wall_time``,
``test_calendar_knows_thanksgiving_and_the_half_day_after``); not duplicated here.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from app.models.orders import Intent, OrderRequest
from app.risk.engine import RiskEngine
from app.risk.limits import parse_limits

NY = ZoneInfo("America/New_York")
LIMITS = {
    "market_hours": {"mode": "exchange", "calendar": "XNYS"},
    "circuit_breaker": None,
    "rate_limit": None,
    "duplicate": None,
    "price_collar": None,
    "volatility": None,
    # account and portfolio checks need an account; only the clock is under test here
    "buying_power": None,
    "daily_loss": None,
    "min_balance": None,
    "leverage": None,
    "max_open_positions": None,
    "concentration": None,
    "sector_concentration": None,
}


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def ny(y: int, mo: int, d: int, h: int, mi: int, s: int = 0) -> float:
    return datetime(y, mo, d, h, mi, s, tzinfo=NY).timestamp()


def utc_offset_hours(ts: float) -> float:
    offset = datetime.fromtimestamp(ts, NY).utcoffset()
    assert offset is not None
    return offset.total_seconds() / 3600


ORDER = OrderRequest(client_order_id="o-clock", symbol="AAPL", intent=Intent.BUY, quantity=1)

# (New York wall time, open?) -- each day's four boundary seconds
CASES = [
    # an ordinary winter day (EST) and summer day (EDT)
    *[
        ((2026, 11, 18, *hms), ok)
        for hms, ok in [
            ((9, 29, 59), False),
            ((9, 30, 0), True),
            ((15, 59, 59), True),
            ((16, 0, 0), False),
        ]
    ],
    *[
        ((2026, 6, 17, *hms), ok)
        for hms, ok in [
            ((9, 29, 59), False),
            ((9, 30, 0), True),
            ((15, 59, 59), True),
            ((16, 0, 0), False),
        ]
    ],
    # the day after Thanksgiving closes at 13:00
    ((2026, 11, 27, 9, 29, 59), False),
    ((2026, 11, 27, 9, 30, 0), True),
    ((2026, 11, 27, 12, 59, 59), True),
    ((2026, 11, 27, 13, 0, 0), False),
    ((2026, 11, 27, 15, 59, 59), False),
    ((2026, 11, 26, 12, 0, 0), False),  # Thanksgiving itself
    # spring forward (Sunday 2026-03-08): Friday in EST, Monday in EDT
    ((2026, 3, 6, 9, 29, 59), False),
    ((2026, 3, 6, 9, 30, 0), True),
    ((2026, 3, 6, 15, 59, 59), True),
    ((2026, 3, 6, 16, 0, 0), False),
    ((2026, 3, 8, 12, 0, 0), False),  # the switch Sunday
    ((2026, 3, 9, 9, 29, 59), False),
    ((2026, 3, 9, 9, 30, 0), True),
    ((2026, 3, 9, 15, 59, 59), True),
    ((2026, 3, 9, 16, 0, 0), False),
    # fall back (Sunday 2026-11-01): Friday in EDT, Monday in EST
    ((2026, 10, 30, 9, 29, 59), False),
    ((2026, 10, 30, 9, 30, 0), True),
    ((2026, 10, 30, 15, 59, 59), True),
    ((2026, 10, 30, 16, 0, 0), False),
    ((2026, 11, 1, 1, 30, 0), False),  # the repeated hour of the switch night
    ((2026, 11, 2, 9, 29, 59), False),
    ((2026, 11, 2, 9, 30, 0), True),
    ((2026, 11, 2, 15, 59, 59), True),
    ((2026, 11, 2, 16, 0, 0), False),
]


@pytest.fixture(scope="module")
def engine_and_clock() -> tuple[RiskEngine, Clock]:
    clock = Clock(ny(2026, 3, 2, 12, 0))  # the table covers a week back, years ahead
    return RiskEngine(parse_limits(LIMITS), clock=clock), clock


@pytest.mark.parametrize(("when", "is_open"), CASES, ids=lambda v: str(v))
def test_market_hours_to_the_second(
    engine_and_clock: tuple[RiskEngine, Clock], when: tuple[int, ...], is_open: bool
) -> None:
    engine, clock = engine_and_clock
    clock.t = ny(*when)
    decision = engine.check(ORDER, 100.0)
    if is_open:
        assert decision.allowed, (when, decision)
    else:
        assert not decision.allowed and decision.check == "market_hours", (when, decision)
        assert decision.reason == "market_closed"


def test_the_switch_weeks_really_change_the_utc_open() -> None:
    """The cases above mean something only if the UTC instants differ by the shift."""
    assert utc_offset_hours(ny(2026, 3, 6, 9, 30)) == -5
    assert utc_offset_hours(ny(2026, 3, 9, 9, 30)) == -4
    assert utc_offset_hours(ny(2026, 10, 30, 9, 30)) == -4
    assert utc_offset_hours(ny(2026, 11, 2, 9, 30)) == -5


@pytest.mark.parametrize(
    ("closed_at", "next_open"),
    [
        ((2026, 3, 6, 16, 0, 0), (2026, 3, 9, 9, 30, 0)),  # over the spring switch
        ((2026, 10, 30, 16, 0, 0), (2026, 11, 2, 9, 30, 0)),  # over the fall switch
        ((2026, 11, 25, 16, 0, 0), (2026, 11, 27, 9, 30, 0)),  # over Thanksgiving
        ((2026, 11, 27, 13, 0, 0), (2026, 11, 30, 9, 30, 0)),  # after the half day
    ],
)
def test_next_open_is_the_next_sessions_wall_time(
    engine_and_clock: tuple[RiskEngine, Clock],
    closed_at: tuple[int, ...],
    next_open: tuple[int, ...],
) -> None:
    engine, clock = engine_and_clock
    clock.t = ny(*closed_at)
    decision = engine.check(ORDER, 100.0)
    assert decision.check == "market_hours"
    assert decision.detail["next_open"] == ny(*next_open)


def test_a_clock_beyond_the_session_table_is_denied_not_open() -> None:
    """An engine left running past its precomputed range fails closed."""
    clock = Clock(ny(2026, 3, 2, 12, 0))
    engine = RiskEngine(
        parse_limits({**LIMITS, "market_hours": {"mode": "exchange", "years_ahead": 1}}),
        clock=clock,
    )
    clock.t = ny(2028, 3, 6, 10, 0)  # a Monday session, outside the table
    decision = engine.check(ORDER, 100.0)
    assert not decision.allowed
    assert (decision.check, decision.reason) == ("market_hours", "calendar_out_of_range")
