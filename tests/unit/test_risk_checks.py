"""One test per check: denied with its reason, allowed just under the limit.

Each engine enables only the check under test (plus the always-on kill switch and
reference price), so a denial can only come from that check.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import REGISTRY

from app.models.orders import Intent, OrderRequest, OrderType
from app.models.portfolio import AccountState
from app.risk import RiskDecision, RiskEngine, parse_limits
from app.risk.state import TRADING_SECONDS_PER_YEAR
from tests.support.risk import harness

# Tuesday 2026-11-17 15:00 UTC = 10:00 New York: a regular session.
T0 = datetime(2026, 11, 17, 15, 0, tzinfo=UTC).timestamp()

SECTIONS = (
    "circuit_breaker", "market_hours", "rate_limit", "buying_power", "daily_loss",
    "min_balance", "leverage", "max_open_positions", "concentration", "sector_concentration",
    "position_size", "order_notional", "price_collar", "quantity", "volatility", "duplicate",
)  # fmt: skip


class Clock:
    """Injected clock: tests move time explicitly."""

    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> float:
        self.t += seconds
        return self.t


_ids = itertools.count()


def order(
    symbol: str = "AAPL", intent: Intent = Intent.BUY, qty: int = 10, **kw: Any
) -> OrderRequest:
    return OrderRequest(
        client_order_id=f"o{next(_ids)}", symbol=symbol, intent=intent, quantity=qty, **kw
    )


def make_engine(
    clock: Clock | None = None,
    cash: float = 100_000.0,
    bp: float | None = None,
    **sections: Any,
) -> RiskEngine:
    """An engine with only ``sections`` enabled, funded with ``cash``."""
    data: dict[str, Any] = dict.fromkeys(SECTIONS)
    data.update(sections)
    engine = harness(RiskEngine(parse_limits(data, "test"), clock=clock or Clock()))
    engine.update_account(
        AccountState(
            account="t",
            cash=cash,
            equity=cash,
            buying_power=cash if bp is None else bp,
        )
    )
    return engine


def denied(d: RiskDecision, check: str, reason: str) -> bool:
    assert not d.allowed, d
    assert (d.check, d.reason) == (check, reason), d
    assert d.message and d.message != "allowed"
    return True


def allowed(d: RiskDecision) -> bool:
    assert d.allowed, d
    assert d.check is None and d.reason is None
    return True


def hold(engine: RiskEngine, symbol: str, qty: int, price: float) -> None:
    """Buy (or short) ``qty`` at ``price`` and mark there."""
    engine.on_quote(symbol, price, engine.clock())
    intent = Intent.BUY if qty > 0 else Intent.SELL_SHORT
    engine.on_fill(symbol, intent, abs(qty), price, engine.clock())


# -- system ---------------------------------------------------------------------------
def test_rate_limit_global() -> None:
    clock = Clock()
    e = make_engine(clock, rate_limit={"global": {"max_orders": 3, "window_seconds": 60}})
    e.on_quote("AAPL", 100, T0)
    e.on_quote("MSFT", 100, T0)
    for i in range(2):
        e.on_order_submitted(order(qty=1 + i), clock())
    assert allowed(e.check(order("MSFT")))  # 2 of 3 used: just under
    e.on_order_submitted(order(qty=7), clock())
    assert denied(e.check(order("MSFT")), "rate_limit", "global_rate_exceeded")
    clock.advance(60.5)
    assert allowed(e.check(order("MSFT")))


def test_rate_limit_per_symbol() -> None:
    clock = Clock()
    e = make_engine(
        clock, rate_limit={"global": None, "per_symbol": {"max_orders": 2, "window_seconds": 10}}
    )
    e.on_quote("AAPL", 100, T0)
    e.on_quote("MSFT", 100, T0)
    e.on_order_submitted(order(qty=1), clock())
    assert allowed(e.check(order()))
    e.on_order_submitted(order(qty=2), clock())
    assert denied(e.check(order()), "rate_limit", "symbol_rate_exceeded")
    assert allowed(e.check(order("MSFT")))  # other symbols unaffected


def test_reference_price_required_for_new_risk_only() -> None:
    e = make_engine()
    assert denied(e.check(order()), "reference_price", "no_price")
    assert allowed(e.check(order(), price=100.0))
    assert allowed(e.check(order(order_type=OrderType.LIMIT, limit_price=100.0)))
    e.update_position("AAPL", 50, 100.0)  # no quote, no price: the exit still works
    assert allowed(e.check(order(intent=Intent.SELL, qty=50)))


# -- account --------------------------------------------------------------------------
def test_buying_power() -> None:
    """The book's buying power: twice equity less gross exposure (Reg-T)."""
    e = make_engine(buying_power={})
    e.update_account(AccountState(account="t", cash=10_000, equity=10_000, buying_power=10_000))
    e.on_quote("AAPL", 100, T0)
    assert allowed(e.check(order(qty=200)))
    assert denied(e.check(order(qty=201)), "buying_power", "insufficient_buying_power")


def test_buying_power_counts_working_orders() -> None:
    e = make_engine(buying_power={})
    e.update_account(AccountState(account="t", cash=10_000, equity=10_000, buying_power=10_000))
    e.on_quote("AAPL", 100, T0)
    e.on_order_submitted(order(qty=120), T0)
    assert allowed(e.check(order(qty=80)))
    assert denied(e.check(order(qty=81)), "buying_power", "insufficient_buying_power")


def test_daily_loss() -> None:
    e = make_engine(daily_loss={"max_loss": 1000})
    hold(e, "AAPL", 100, 100.0)
    e.on_quote("AAPL", 90.01, T0 + 1)  # -999
    assert allowed(e.check(order()))
    e.on_quote("AAPL", 90.0, T0 + 2)  # -1000: hit
    assert denied(e.check(order()), "daily_loss", "daily_loss_limit")
    e.on_quote("AAPL", 95.0, T0 + 3)  # bounced: still latched for the day
    assert denied(e.check(order()), "daily_loss", "daily_loss_limit")
    assert allowed(e.check(order(intent=Intent.SELL, qty=100)))  # exits always pass


def test_min_balance_equity() -> None:
    e = make_engine(min_balance={"min_equity": 50_000})
    hold(e, "AAPL", 100, 100.0)
    e.update_account(AccountState(account="t", cash=40_000, equity=50_000, buying_power=1e6))
    assert allowed(e.check(order()))  # equity exactly at the minimum
    e.on_quote("AAPL", 99.99, T0 + 1)
    assert denied(e.check(order()), "min_balance", "below_min_equity")


def test_min_balance_cash_after_buy() -> None:
    e = make_engine(cash=10_000, min_balance={"min_equity": None, "min_cash": 1_000})
    e.on_quote("AAPL", 100, T0)
    assert allowed(e.check(order(qty=90)))
    assert denied(e.check(order(qty=91)), "min_balance", "below_min_cash")


def test_leverage() -> None:
    e = make_engine(leverage={"max_leverage": 1.0})
    e.on_quote("AAPL", 100, T0)
    assert allowed(e.check(order(qty=1000)))  # exactly 1.0x
    assert denied(e.check(order(qty=1001)), "leverage", "max_leverage")
    hold(e, "MSFT", -500, 100.0)  # shorts count as gross exposure too
    assert allowed(e.check(order(qty=500)))
    assert denied(e.check(order(qty=501)), "leverage", "max_leverage")


@pytest.mark.parametrize(
    ("section", "limits"),
    [
        ("leverage", {"max_leverage": 2.0}),
        ("concentration", {"max_pct": 50}),
        ("sector_concentration", {"max_pct": 50}),
    ],
)
def test_no_new_exposure_without_equity(section: str, limits: dict[str, Any]) -> None:
    e = make_engine(cash=0.0, **{section: limits})
    e.on_quote("AAPL", 100, T0)
    assert denied(e.check(order(qty=1)), section, "no_equity")


# -- portfolio ------------------------------------------------------------------------
def test_max_open_positions() -> None:
    e = make_engine(max_open_positions={"max_positions": 2})
    hold(e, "AAPL", 10, 100.0)
    e.on_quote("MSFT", 100, T0)
    e.on_quote("NVDA", 100, T0)
    assert allowed(e.check(order("MSFT")))  # 1 open: a second one is fine
    hold(e, "MSFT", 10, 100.0)
    assert denied(e.check(order("NVDA")), "max_open_positions", "max_open_positions")
    assert allowed(e.check(order("AAPL")))  # adding to a held symbol is not a new position


def test_max_open_positions_counts_working_orders() -> None:
    e = make_engine(max_open_positions={"max_positions": 2})
    for s in ("AAPL", "MSFT", "NVDA"):
        e.on_quote(s, 100, T0)
    hold(e, "AAPL", 10, 100.0)
    e.on_order_submitted(order("MSFT"), T0)
    assert denied(e.check(order("NVDA")), "max_open_positions", "max_open_positions")


def test_concentration() -> None:
    e = make_engine(concentration={"max_pct": 25})
    e.on_quote("AAPL", 100, T0)
    assert allowed(e.check(order(qty=250)))  # 25 % of 100k
    assert denied(e.check(order(qty=251)), "concentration", "max_concentration")


def test_sector_concentration() -> None:
    e = make_engine(
        sector_concentration={
            "max_pct": 30,
            "sectors": {"AAPL": "Technology", "msft": "Technology"},
        }
    )
    hold(e, "AAPL", 200, 100.0)  # 20 % Technology
    e.on_quote("MSFT", 100, T0)
    e.on_quote("ZZZ", 100, T0)
    assert allowed(e.check(order("MSFT", qty=100)))  # 30 %
    d = e.check(order("MSFT", qty=101))
    assert denied(d, "sector_concentration", "max_sector_concentration")
    assert d.detail["sector"] == "Technology"
    assert allowed(e.check(order("ZZZ", qty=300)))  # unknown symbol: its own "Other" sector
    assert e.book.holding("ZZZ").sector == "Other"


# -- order / strategy -----------------------------------------------------------------
def test_position_size_shares() -> None:
    e = make_engine(position_size={"max_shares": 100, "max_notional": None})
    hold(e, "AAPL", 60, 10.0)
    assert allowed(e.check(order(qty=40)))
    assert denied(e.check(order(qty=41)), "position_size", "max_position_shares")
    hold(e, "MSFT", -60, 10.0)
    assert denied(
        e.check(order("MSFT", Intent.SELL_SHORT, 41)), "position_size", "max_position_shares"
    )


def test_position_size_notional_counts_working_orders() -> None:
    e = make_engine(position_size={"max_shares": None, "max_notional": 5_000})
    e.on_quote("AAPL", 100, T0)
    e.on_order_submitted(order(qty=20), T0)
    assert allowed(e.check(order(qty=30)))
    assert denied(e.check(order(qty=31)), "position_size", "max_position_notional")


def test_position_size_per_strategy() -> None:
    e = make_engine(
        position_size={"max_shares": 100, "max_notional": None},
        strategies={
            "swing": {"position_size": {"max_shares": 10}},
            "free": {"position_size": None},
        },
    )
    e.on_quote("AAPL", 10, T0)
    assert allowed(e.check(order(qty=10, strategy="swing")))
    assert denied(e.check(order(qty=11, strategy="swing")), "position_size", "max_position_shares")
    assert allowed(e.check(order(qty=100, strategy="other")))
    assert allowed(e.check(order(qty=5000, strategy="free")))


def test_order_notional() -> None:
    e = make_engine(
        order_notional={"max_notional": 10_000},
        strategies={"small": {"order_notional": {"max_notional": 1_000}}},
    )
    e.on_quote("AAPL", 100, T0)
    assert allowed(e.check(order(qty=100)))
    assert denied(e.check(order(qty=101)), "order_notional", "max_order_notional")
    assert allowed(e.check(order(qty=10, strategy="small")))
    assert denied(e.check(order(qty=11, strategy="small")), "order_notional", "max_order_notional")
    # The reference price can come from the caller.
    assert denied(e.check(order(qty=100), price=100.01), "order_notional", "max_order_notional")


def test_price_collar() -> None:
    e = make_engine(price_collar={"max_deviation_pct": 5})
    e.on_quote("AAPL", 100, T0)
    lim = OrderType.LIMIT
    assert allowed(e.check(order(order_type=lim, limit_price=105.0)))
    assert allowed(e.check(order(order_type=lim, limit_price=95.0)))
    assert denied(e.check(order(order_type=lim, limit_price=105.5)), "price_collar", "price_collar")
    stop = order(intent=Intent.SELL, order_type=OrderType.STOP, stop_price=80.0)
    assert denied(e.check(stop), "price_collar", "price_collar")
    assert allowed(e.check(order(qty=1)))  # market orders have nothing to collar


def test_price_collar_requires_fresh_quote() -> None:
    clock = Clock()
    e = make_engine(clock, price_collar={"require_quote": True, "max_quote_age_seconds": 30})
    o = order(order_type=OrderType.LIMIT, limit_price=100.0)
    assert denied(e.check(o), "price_collar", "no_quote")
    e.on_quote("AAPL", 100, T0)
    clock.advance(30)
    assert allowed(e.check(o))
    clock.advance(1)
    assert denied(e.check(o), "price_collar", "no_quote")


def test_quantity() -> None:
    e = make_engine(
        quantity={"min_quantity": 5, "max_quantity": 100},
        strategies={"scalp": {"quantity": {"max_quantity": 20}}},
    )
    e.on_quote("AAPL", 1, T0)
    assert allowed(e.check(order(qty=5)))
    assert allowed(e.check(order(qty=100)))
    assert denied(e.check(order(qty=4)), "quantity", "below_min_quantity")
    assert denied(e.check(order(qty=101)), "quantity", "above_max_quantity")
    assert allowed(e.check(order(qty=20, strategy="scalp")))
    assert denied(e.check(order(qty=21, strategy="scalp")), "quantity", "above_max_quantity")
    assert denied(e.check(order(qty=4, strategy="scalp")), "quantity", "below_min_quantity")


def _feed_zigzag(e: RiskEngine, symbol: str, r: float, n: int, t: float) -> float:
    """Quotes one second apart whose log-returns alternate +r / -r."""
    import math

    price = 100.0
    for i in range(n + 1):
        e.on_quote(symbol, price, t + i)
        price *= math.exp(r if i % 2 == 0 else -r)
    return r * math.sqrt(TRADING_SECONDS_PER_YEAR) * 100  # annualised percent


def test_volatility() -> None:
    r = 0.001
    expected = 0.001 * TRADING_SECONDS_PER_YEAR**0.5 * 100  # ~3.8e2 %
    e = make_engine(
        volatility={"max_annualized_pct": expected * 1.001, "window": 30, "min_samples": 10}
    )
    _feed_zigzag(e, "AAPL", r, 40, T0)
    assert allowed(e.check(order()))
    e2 = make_engine(
        volatility={"max_annualized_pct": expected * 0.999, "window": 30, "min_samples": 10}
    )
    _feed_zigzag(e2, "AAPL", r, 40, T0)
    d = e2.check(order())
    assert denied(d, "volatility", "volatility")
    assert d.detail["annualized_pct"] == pytest.approx(expected, rel=1e-6)


def test_volatility_needs_samples_and_ignores_gaps() -> None:
    e = make_engine(volatility={"max_annualized_pct": 50, "window": 30, "min_samples": 10})
    _feed_zigzag(e, "AAPL", 0.01, 5, T0)
    assert allowed(e.check(order()))  # 5 samples: no opinion yet
    e.on_quote("AAPL", 200.0, T0 + 3600)  # a jump across a gap is not volatility
    assert e.state.symbols["AAPL"].vol is not None
    assert e.state.symbols["AAPL"].vol.count == 5


def test_duplicate() -> None:
    clock = Clock()
    e = make_engine(clock, duplicate={"window_seconds": 5})
    e.on_quote("AAPL", 100, T0)
    first = order(qty=10)
    assert allowed(e.check(first))
    e.on_order_submitted(first, clock())
    clock.advance(4.9)
    assert denied(e.check(order(qty=10)), "duplicate", "duplicate_order")
    assert allowed(e.check(order(qty=11)))
    assert allowed(e.check(order(intent=Intent.SELL_SHORT, qty=10)))
    clock.advance(0.1)
    assert allowed(e.check(order(qty=10)))


# -- cross-cutting ----------------------------------------------------------------------
def test_reducing_orders_skip_new_risk_checks() -> None:
    """A trader can always get out: no buying power, over-concentrated, at the loss limit."""
    e = make_engine(
        buying_power={},
        daily_loss={"max_loss": 100},
        concentration={"max_pct": 1},
        max_open_positions={"max_positions": 1},
        leverage={"max_leverage": 0.1},
        position_size={"max_shares": 10},
        order_notional={"max_notional": 10},
        quantity={"max_quantity": 1},
        min_balance={"min_equity": 1e9},
        volatility={"max_annualized_pct": 1, "min_samples": 2},
    )
    e.update_position("AAPL", 500, 100.0)
    e.update_position("MSFT", 500, 100.0)
    e.update_account(AccountState(account="t", cash=0, equity=100_000, buying_power=0))
    _feed_zigzag(e, "AAPL", 0.01, 10, T0)
    assert not e.check(order("AAPL", Intent.BUY, 1)).allowed
    assert allowed(e.check(order("AAPL", Intent.SELL, 500)))
    assert not e.check(order("AAPL", Intent.SELL, 501)).allowed  # would flip short: new risk


def test_first_denial_wins_and_is_counted() -> None:
    e = make_engine(quantity={"max_quantity": 5}, order_notional={"max_notional": 10})
    e.on_quote("AAPL", 100, T0)
    before = REGISTRY.get_sample_value("traderops_risk_denials_total", {"check": "order_notional"})
    d = e.check(order(qty=6))
    assert denied(d, "order_notional", "max_order_notional")  # runs before quantity
    after = REGISTRY.get_sample_value("traderops_risk_denials_total", {"check": "order_notional"})
    assert (after or 0) - (before or 0) == 1
    assert d.to_dict()["detail"]["limit"] == 10


def test_disabled_checks_are_not_built() -> None:
    e = make_engine(quantity={"enabled": False}, duplicate={"window_seconds": 1})
    names = [c.name for c in e.checks]
    assert "quantity" not in names and "duplicate" in names
    assert names[0] == "kill_switch"


def test_daily_loss_latches_on_a_dip_between_checks() -> None:
    e = make_engine(daily_loss={"max_loss": 1000})
    hold(e, "AAPL", 100, 100.0)
    e.on_quote("AAPL", 89.0, T0 + 1)  # -1100, nobody checks
    e.on_quote("AAPL", 99.0, T0 + 2)  # back to -100
    assert denied(e.check(order()), "daily_loss", "daily_loss_limit")
    assert e.snapshot()["daily"]["loss_limit_hit"] is True
