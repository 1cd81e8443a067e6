"""System layer and engine lifecycle: kill switch, circuit breaker, market hours, day roll."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from app.models.orders import Intent, OrderType, TimeInForce
from app.models.portfolio import AccountState
from app.risk import BreakerState, KillState, RiskEngine, parse_limits
from app.risk.checks import ORDER
from tests.support.risk import harness
from tests.unit.test_risk_checks import (
    SECTIONS,
    T0,
    Clock,
    allowed,
    denied,
    hold,
    make_engine,
    order,
)


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, sec: int = 0) -> float:
    return datetime(y, mo, d, h, mi, sec, tzinfo=UTC).timestamp()


# -- kill switch ----------------------------------------------------------------------
def test_kill_switch_reducing() -> None:
    e = make_engine()
    hold(e, "AAPL", 100, 100.0)
    hold(e, "MSFT", -50, 100.0)
    e.on_quote("NVDA", 100, T0)
    assert e.set_kill_switch("reducing") is KillState.REDUCING
    assert allowed(e.check(order("AAPL", Intent.SELL, 100)))  # close the long
    assert allowed(e.check(order("MSFT", Intent.BUY_TO_COVER, 20)))  # shrink the short
    assert denied(e.check(order("AAPL", Intent.BUY, 1)), "kill_switch", "reducing_only")
    assert denied(e.check(order("NVDA", Intent.SELL_SHORT, 1)), "kill_switch", "reducing_only")
    # SELL more than held would flip to short; SELL with nothing held opens a short.
    assert denied(e.check(order("AAPL", Intent.SELL, 101)), "kill_switch", "reducing_only")
    assert denied(e.check(order("NVDA", Intent.SELL, 1)), "kill_switch", "reducing_only")
    assert denied(e.check(order("MSFT", Intent.BUY_TO_COVER, 51)), "kill_switch", "reducing_only")


def test_kill_switch_reducing_counts_working_exits() -> None:
    e = make_engine()
    hold(e, "AAPL", 100, 100.0)
    e.set_kill_switch(KillState.REDUCING)
    e.on_order_submitted(order("AAPL", Intent.SELL, 70), T0)
    assert allowed(e.check(order("AAPL", Intent.SELL, 30)))
    assert denied(e.check(order("AAPL", Intent.SELL, 31)), "kill_switch", "reducing_only")


def test_kill_switch_halted_denies_everything() -> None:
    e = make_engine()
    hold(e, "AAPL", 100, 100.0)
    e.set_kill_switch("HALTED", reason="operator")
    for o in (
        order("AAPL", Intent.BUY, 1),
        order("AAPL", Intent.SELL, 1),
        order("AAPL", Intent.SELL_SHORT, 1),
        order("AAPL", Intent.BUY_TO_COVER, 1),
    ):
        assert denied(e.check(o), "kill_switch", "halted")
    assert e.snapshot()["kill_switch"]["reason"] == "operator"
    e.set_kill_switch("ACTIVE")
    assert allowed(e.check(order("AAPL", Intent.BUY, 1)))


def test_kill_switch_rejects_unknown_state() -> None:
    e = make_engine()
    with pytest.raises(ValueError):
        e.set_kill_switch("PAUSED")


def test_kill_switch_initial_state_from_limits() -> None:
    data = dict.fromkeys(SECTIONS) | {"kill_switch": {"initial_state": "HALTED"}}
    e = harness(RiskEngine(parse_limits(data), clock=Clock()))
    e.on_quote("AAPL", 100, T0)
    assert denied(e.check(order()), "kill_switch", "halted")


# -- circuit breaker --------------------------------------------------------------------
BREAKER = {
    "max_errors": 3,
    "max_error_ratio": None,
    "error_window_seconds": 60,
    "max_loss": None,
    "cooldown_seconds": 30,
}


def test_breaker_trips_on_errors_and_recovers_half_open() -> None:
    clock = Clock()
    e = make_engine(clock, circuit_breaker=BREAKER)
    e.on_quote("AAPL", 100, T0)
    e.on_broker_result(False, clock())
    e.on_broker_result(False, clock.advance(1))
    e.on_broker_result(True, clock.advance(1))
    assert allowed(e.check(order()))  # 2 errors: just under
    e.on_broker_result(False, clock.advance(1))
    assert denied(e.check(order(qty=2)), "circuit_breaker", "open")
    assert e.snapshot()["circuit_breaker"]["trip_reason"] == "broker_errors"
    clock.advance(29)
    assert denied(e.check(order(qty=3)), "circuit_breaker", "open")
    clock.advance(1)  # cool-down over: half-open lets one probe through
    probe = order(qty=4)
    assert allowed(e.check(probe))
    assert e.breaker is not None and e.breaker.state is BreakerState.HALF_OPEN
    e.on_order_submitted(probe, clock())
    assert denied(e.check(order(qty=5)), "circuit_breaker", "half_open_probe_pending")
    e.on_broker_result(True, clock.advance(1))
    assert e.snapshot()["circuit_breaker"]["state"] == BreakerState.CLOSED.value
    assert allowed(e.check(order(qty=6)))


def test_breaker_half_open_failure_reopens() -> None:
    clock = Clock()
    e = make_engine(clock, circuit_breaker=BREAKER)
    e.on_quote("AAPL", 100, T0)
    for _ in range(3):
        e.on_broker_result(False, clock())
    clock.advance(30)
    probe = order()
    assert allowed(e.check(probe))
    e.on_order_submitted(probe, clock())
    e.on_broker_result(False, clock.advance(1))
    assert denied(e.check(order(qty=2)), "circuit_breaker", "open")
    assert e.breaker is not None and e.breaker.trips == 2


def test_breaker_errors_outside_window_do_not_count() -> None:
    clock = Clock()
    e = make_engine(clock, circuit_breaker=BREAKER)
    e.on_quote("AAPL", 100, T0)
    for _ in range(2):
        e.on_broker_result(False, clock())
    clock.advance(61)
    e.on_broker_result(False, clock())
    assert allowed(e.check(order()))


def test_breaker_trips_on_error_ratio() -> None:
    clock = Clock()
    cfg = BREAKER | {"max_errors": None, "max_error_ratio": 0.5, "min_calls": 4}
    e = make_engine(clock, circuit_breaker=cfg)
    e.on_quote("AAPL", 100, T0)
    for ok in (True, False, True):
        e.on_broker_result(ok, clock())
    assert allowed(e.check(order()))  # 3 calls: below min_calls
    e.on_broker_result(False, clock())  # 2 of 4
    assert denied(e.check(order()), "circuit_breaker", "open")


def test_breaker_trips_on_loss_velocity_but_lets_exits_out() -> None:
    clock = Clock()
    cfg = BREAKER | {"max_errors": None, "max_loss": 500, "loss_window_seconds": 60}
    e = make_engine(clock, circuit_breaker=cfg)
    hold(e, "AAPL", 1000, 100.0)
    e.on_quote("AAPL", 100.2, clock.advance(1))  # peak +200
    e.on_quote("AAPL", 99.71, clock.advance(1))  # 490 below peak: just under
    assert allowed(e.check(order()))
    e.on_quote("AAPL", 99.7, clock.advance(1))  # 500 below the peak within 60 s
    assert denied(e.check(order()), "circuit_breaker", "open")
    assert e.snapshot()["circuit_breaker"]["trip_reason"] == "loss_velocity"
    assert allowed(e.check(order(intent=Intent.SELL, qty=1000)))


def test_breaker_slow_loss_does_not_trip() -> None:
    clock = Clock()
    cfg = BREAKER | {"max_errors": None, "max_loss": 500, "loss_window_seconds": 60}
    e = make_engine(clock, circuit_breaker=cfg)
    hold(e, "AAPL", 1000, 100.0)
    price = 100.0
    for _ in range(10):  # 100 $ a minute: 1000 $ in all, never 500 within 60 s
        price -= 0.1
        e.on_quote("AAPL", price, clock.advance(61))
    assert allowed(e.check(order()))


def test_breaker_block_reducing() -> None:
    clock = Clock()
    e = make_engine(clock, circuit_breaker=BREAKER | {"block_reducing": True})
    hold(e, "AAPL", 100, 100.0)
    for _ in range(3):
        e.on_broker_result(False, clock())
    assert denied(e.check(order(intent=Intent.SELL, qty=100)), "circuit_breaker", "open")


# -- market hours -----------------------------------------------------------------------
def hours_engine(clock: Clock, mode: str = "exchange") -> RiskEngine:
    e = make_engine(clock, market_hours={"mode": mode, "calendar": "XNYS", "years_ahead": 1})
    e.on_quote("AAPL", 100, clock())
    return e


@pytest.mark.parametrize(
    ("when", "is_open"),
    [
        ((2026, 11, 25, 20, 59), True),  # Wed 15:59 ET
        ((2026, 11, 25, 21, 0), False),  # Wed 16:00 ET: closed
        ((2026, 11, 26, 15, 0), False),  # Thanksgiving: closed all day
        ((2026, 11, 27, 14, 30), True),  # Fri 09:30 ET
        ((2026, 11, 27, 17, 59), True),  # Fri 12:59 ET
        ((2026, 11, 27, 18, 0), False),  # half day: closed at 13:00 ET
        ((2026, 11, 28, 15, 0), False),  # Saturday
    ],
)
def test_market_hours_thanksgiving_week(
    when: tuple[int, int, int, int, int], is_open: bool
) -> None:
    clock = Clock(utc(2026, 11, 20, 15))
    e = hours_engine(clock)
    clock.t = utc(*when)
    d = e.check(order())
    if is_open:
        assert allowed(d)
    else:
        assert denied(d, "market_hours", "market_closed")


def test_market_hours_next_open_after_thanksgiving() -> None:
    clock = Clock(utc(2026, 11, 26, 15))
    d = hours_engine(clock).check(order())
    assert d.detail["next_open"] == utc(2026, 11, 27, 14, 30)


@pytest.mark.parametrize(
    ("when", "is_open"),
    [
        # 2026-03-08: clocks go forward. The open moves from 14:30 UTC to 13:30 UTC.
        ((2026, 3, 6, 14, 29), False),  # Fri 09:29 EST
        ((2026, 3, 6, 14, 30), True),  # Fri 09:30 EST
        ((2026, 3, 6, 20, 59), True),  # Fri 15:59 EST
        ((2026, 3, 9, 13, 29), False),  # Mon 09:29 EDT
        ((2026, 3, 9, 13, 30), True),  # Mon 09:30 EDT
        ((2026, 3, 9, 19, 59), True),  # Mon 15:59 EDT
        ((2026, 3, 9, 20, 0), False),  # Mon 16:00 EDT
    ],
)
def test_market_hours_dst_week(when: tuple[int, int, int, int, int], is_open: bool) -> None:
    clock = Clock(utc(2026, 3, 2, 15))
    e = hours_engine(clock)
    clock.t = utc(*when)
    d = e.check(order())
    assert d.allowed is is_open, d


def test_market_hours_always_mode_and_settings_fallback() -> None:
    clock = Clock(utc(2026, 11, 26, 15))  # Thanksgiving
    assert allowed(hours_engine(clock, "always").check(order()))
    data = dict.fromkeys(SECTIONS) | {"market_hours": {"mode": None}}
    e = harness(RiskEngine(parse_limits(data), clock=clock, market_hours="always"))
    e.on_quote("AAPL", 100, clock())
    assert "market_hours" not in [c.name for c in e.checks]
    e = harness(RiskEngine(parse_limits(data), clock=clock, market_hours="exchange"))
    e.on_quote("AAPL", 100, clock())
    assert denied(e.check(order()), "market_hours", "market_closed")


def test_market_hours_beyond_table_fails_closed() -> None:
    clock = Clock(utc(2026, 11, 20, 15))
    e = hours_engine(clock)
    clock.t = utc(2028, 11, 21, 15)
    assert denied(e.check(order()), "market_hours", "calendar_out_of_range")


# -- daily loss reset ---------------------------------------------------------------------
def test_daily_loss_resets_when_the_trading_day_rolls_in_new_york() -> None:
    """The budget is the trading day's (app/sessions.py): on XNYS the day rolls at
    midnight New York, so pre-market fills count toward the day they happen on."""
    clock = Clock(utc(2026, 11, 17, 15))  # Tue 10:00 EST
    e = make_engine(clock, daily_loss={"max_loss": 1000})
    hold(e, "AAPL", 100, 100.0)
    e.on_quote("AAPL", 89.0, clock.advance(60))  # -1100
    assert denied(e.check(order()), "daily_loss", "daily_loss_limit")
    clock.t = utc(2026, 11, 18, 4, 59, 59)  # Tue 23:59:59 EST: still Tuesday's budget
    assert denied(e.check(order()), "daily_loss", "daily_loss_limit")
    clock.t = utc(2026, 11, 18, 5)  # Wed 00:00 EST: Wednesday, a new budget
    assert allowed(e.check(order()))
    snap = e.snapshot()["daily"]
    assert snap["pnl"] == pytest.approx(0.0)
    assert snap["day_started_at"] == utc(2026, 11, 18, 5)
    assert e.trading_day(utc(2026, 11, 18, 13)) == "2026-11-18"  # 08:00 pre-market
    e.on_quote("AAPL", 80.0, clock.advance(1))  # -900 today
    assert allowed(e.check(order()))


def test_daily_loss_reset_follows_dst() -> None:
    clock = Clock(utc(2026, 3, 9, 15))  # Mon 11:00 EDT (clocks went forward on Sunday)
    e = make_engine(clock, daily_loss={"max_loss": 100})
    hold(e, "AAPL", 100, 100.0)
    e.on_quote("AAPL", 98.0, clock.advance(1))
    assert not e.check(order()).allowed
    clock.t = utc(2026, 3, 10, 3, 59)  # Mon 23:59 EDT
    assert not e.check(order()).allowed
    clock.t = utc(2026, 3, 10, 4)  # Tue 00:00 EDT (05:00 UTC in winter)
    assert allowed(e.check(order()))


def test_a_weekend_belongs_to_the_next_session() -> None:
    clock = Clock(utc(2026, 11, 20, 15))  # Fri 10:00 EST
    e = make_engine(clock, daily_loss={"max_loss": 100})
    hold(e, "AAPL", 100, 100.0)
    e.on_quote("AAPL", 98.0, clock.advance(1))
    assert not e.check(order()).allowed
    clock.t = utc(2026, 11, 21, 17)  # Saturday: Monday's trading day, Monday's budget
    assert allowed(e.check(order()))
    assert e.trading_day(clock.t) == "2026-11-23"


def test_day_roll_drops_working_day_orders_only() -> None:
    clock = Clock(utc(2026, 11, 17, 15))
    e = make_engine(clock, position_size={"max_shares": 100, "max_notional": None})
    e.on_quote("AAPL", 10, clock())
    e.on_order_submitted(order(qty=60), clock())
    e.on_order_submitted(order(qty=30, time_in_force=TimeInForce.GTC), clock())
    assert denied(e.check(order(qty=11)), "position_size", "max_position_shares")
    clock.t = utc(2026, 11, 18, 14, 30)
    assert allowed(e.check(order(qty=70)))  # the DAY order expired, the GTC one still counts
    assert denied(e.check(order(qty=71)), "position_size", "max_position_shares")


def test_mid_day_start_counts_todays_realised_pnl() -> None:
    clock = Clock()
    e = harness(
        RiskEngine(
            parse_limits(dict.fromkeys(SECTIONS) | {"daily_loss": {"max_loss": 500}}), clock=clock
        )
    )
    e.on_quote("AAPL", 100, T0)
    e.update_account(
        AccountState(
            account="t", cash=10_000, equity=10_000, buying_power=10_000, realized_pnl_today=-600
        )
    )
    assert denied(e.check(order()), "daily_loss", "daily_loss_limit")


# -- working orders, fills, snapshot --------------------------------------------------------
def test_fills_release_working_orders() -> None:
    e = make_engine(position_size={"max_shares": 100, "max_notional": None})
    e.on_quote("AAPL", 10, T0)
    o = order(qty=80)
    e.on_order_submitted(o, T0)
    e.on_fill("AAPL", Intent.BUY, 50, 10.0, T0, order_id=o.client_order_id)
    assert e.book.holdings["AAPL"].pending_buy == 30
    assert denied(e.check(order(qty=21)), "position_size", "max_position_shares")
    e.on_order_done(o.client_order_id)  # canceled: the remaining 30 no longer count
    assert allowed(e.check(order(qty=50)))
    assert e.book.working == {}


def test_fills_track_cash_and_average_price() -> None:
    e = make_engine(cash=10_000)
    e.on_fill("AAPL", Intent.BUY, 10, 100.0, T0)
    e.on_fill("AAPL", Intent.BUY, 10, 110.0, T0)
    sym = e.book.holdings["AAPL"]
    assert (sym.qty, sym.avg_price) == (20, 105.0)
    e.on_fill("AAPL", Intent.SELL, 5, 120.0, T0)
    assert (sym.qty, sym.avg_price) == (15, pytest.approx(1600 / 15))  # FIFO: 100s go first
    assert e.book.cash == pytest.approx(10_000 - 2_100 + 600)
    e.on_quote("AAPL", 120.0, T0 + 1)
    assert e.book.equity == pytest.approx(10_000 + 5 * 15 + 15 * 15)


def test_snapshot_is_json_ready() -> None:
    clock = Clock()
    e = make_engine(
        clock,
        circuit_breaker={},
        market_hours={"mode": "exchange"},
        rate_limit={},
        buying_power={},
        daily_loss={},
        leverage={},
        concentration={},
        sector_concentration={"sectors": {"AAPL": "Technology"}},
        position_size={},
        order_notional={},
        price_collar={},
        quantity={},
        volatility={},
        duplicate={},
        max_open_positions={},
        min_balance={},
    )
    hold(e, "AAPL", 10, 100.0)
    e.on_order_submitted(order(order_type=OrderType.LIMIT, limit_price=99.0), clock())
    snap = e.snapshot()
    json.dumps(snap)
    assert snap["kill_switch"]["state"] == "ACTIVE"
    assert snap["circuit_breaker"]["state"] == "CLOSED"
    assert snap["market_hours"] == {"mode": "exchange", "open": True}
    assert snap["daily"]["loss_limit"] == 1000
    names = [c["name"] for c in snap["checks"]]
    assert names == list(ORDER) and names[-1] == "option_delta"
    status = {c["name"]: c["status"] for c in snap["checks"]}
    assert status["max_open_positions"] == {"used": 1, "limit": 10}
    assert status["rate_limit"]["global"]["used"] == 1
    assert snap["limits"]["rate_limit"]["global"]["max_orders"] == 60
