"""Option positions grouped as spreads (app/options/groups.py): pure, no I/O."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from app.models.occ import OccSymbol, OptionRight, format_occ, parse_occ
from app.models.portfolio import Position, StrategyPosition
from app.options.chain import OptionQuote
from app.options.groups import OptionLeg, describe, group_positions

JAN = date(2027, 1, 15)
FEB = date(2027, 2, 19)
C, P = OptionRight.CALL, OptionRight.PUT


def occ(right: OptionRight, strike: int, expiry: date = JAN, root: str = "SPY") -> str:
    return format_occ(OccSymbol(root, expiry, right, Decimal(strike)))


def position(symbol: str, *parts: tuple[str, float, float], last: float | None = None) -> Position:
    """A position made of its strategies' (strategy, quantity, avg price) parts."""
    qty = sum(q for _, q, _ in parts)
    cost = sum(q * p for _, q, p in parts)
    return Position(
        symbol=symbol,
        quantity=qty,
        avg_price=cost / qty if qty else 0.0,
        last_price=last,
        multiplier=100.0 if len(symbol) > 15 else 1.0,
        strategies=[StrategyPosition(strategy=s, quantity=q, avg_price=p) for s, q, p in parts],
    )


def quote(symbol: str, **fields: object) -> OptionQuote:
    c = parse_occ(symbol)
    return OptionQuote(symbol, c.underlying, c.expiry, c.right, c.strike, **fields)  # type: ignore[arg-type]


def no_quotes(_symbol: str) -> OptionQuote | None:
    return None


def leg(right: OptionRight, strike: int, qty: float, expiry: date = JAN) -> OptionLeg:
    return OptionLeg(
        symbol=occ(right, strike, expiry),
        right=right,
        strike=strike,
        expiration=expiry,
        quantity=qty,
        avg_price=1.0,
        multiplier=100,
        cost=qty * 100,
    )


def test_groups_per_strategy_and_underlying_options_only() -> None:
    positions = [
        position("AAPL", ("vert", 10, 150.0)),  # shares: not an option leg
        position(occ(C, 500), ("vert", 2, 3.0), ("other", 1, 3.2)),
        position(occ(C, 505), ("vert", -2, 2.6)),
        position(occ(P, 150, root="AAPL"), ("vert", 1, 2.0)),
    ]
    groups = group_positions(positions, no_quotes)
    assert [(g.strategy, g.underlying, g.kind) for g in groups] == [
        ("other", "SPY", "long call"),
        ("vert", "AAPL", "long put"),
        ("vert", "SPY", "call vertical"),
    ]
    vertical = groups[2]
    assert [(x.symbol, x.quantity, x.avg_price) for x in vertical.legs] == [
        (occ(C, 500), 2, 3.0),
        (occ(C, 505), -2, 2.6),
    ]
    assert vertical.net_cost == pytest.approx(80.0)
    assert groups[0].net_cost == 320.0  # the other strategy's own share of the 500 call


def test_a_credit_spread_costs_negative_and_pnl_uses_the_mid() -> None:
    positions = [
        position(occ(P, 490), ("put", 1, 1.0), last=0.9),
        position(occ(P, 495), ("put", -1, 1.8), last=1.5),
    ]
    quotes = {
        occ(P, 490): quote(
            occ(P, 490),
            bid=0.7,
            ask=0.8,
            delta=-0.2,
            gamma=0.01,
            theta=-0.05,
            vega=0.1,
            greeks_time=100.0,
        ),
        occ(P, 495): quote(
            occ(P, 495),
            bid=1.3,
            ask=1.4,
            delta=-0.3,
            gamma=0.02,
            theta=-0.07,
            vega=0.12,
            greeks_time=90.0,
        ),
    }
    (g,) = group_positions(positions, quotes.get)
    assert g.kind == "put vertical"
    assert g.net_cost == -80.0  # a credit received
    assert [x.mark for x in g.legs] == [0.75, 1.35]
    # (0.75 - 1.0) x 100 + (1.35 - 1.8) x -100 = -25 + 45
    assert g.unrealized_pnl == pytest.approx(20.0)
    assert g.delta == pytest.approx(-20 + 30)  # share equivalents
    assert g.gamma == pytest.approx(1 - 2)
    assert g.theta == pytest.approx(-5 + 7)
    assert g.vega == pytest.approx(10 - 12)
    assert g.greeks_time == 90.0  # the oldest


def test_marks_fall_back_to_last_then_the_book_and_greeks_stay_unknown() -> None:
    positions = [
        position(occ(C, 500), ("s", 1, 2.0), last=2.2),
        position(occ(C, 510), ("s", -1, 1.0), last=1.1),
        position(occ(C, 520), ("t", 1, 0.5), last=None),
    ]
    quotes = {occ(C, 500): quote(occ(C, 500), last=2.5, delta=0.5)}  # no bid/ask
    s, t = group_positions(positions, quotes.get)
    assert [x.mark for x in s.legs] == [2.5, 1.1]
    assert s.unrealized_pnl == pytest.approx(50.0 - 10.0)
    assert s.legs[0].delta == 50.0 and s.legs[1].delta is None
    assert s.delta is None  # one leg unknown: no partial sum
    assert t.legs[0].mark is None and t.unrealized_pnl is None


def test_a_position_without_strategy_parts_is_one_default_leg() -> None:
    p = Position(symbol=occ(C, 500), quantity=3, avg_price=1.5, multiplier=100.0)
    (g,) = group_positions([p], no_quotes)
    assert (g.strategy, g.legs[0].quantity, g.net_cost) == ("default", 3, 450.0)


@pytest.mark.parametrize(
    ("legs", "kind"),
    [
        ([leg(C, 500, -1)], "short call"),
        ([leg(P, 500, 1)], "long put"),
        ([leg(C, 500, 1), leg(C, 505, -1)], "call vertical"),
        ([leg(P, 495, -3), leg(P, 500, 3)], "put vertical"),
        ([leg(C, 500, 1), leg(P, 500, 1)], "long straddle"),
        ([leg(P, 495, -1), leg(C, 505, -1)], "short strangle"),
        ([leg(P, 495, -1), leg(C, 505, 1)], "risk reversal"),
        ([leg(C, 500, -1), leg(C, 500, 1, FEB)], "calendar"),
        ([leg(C, 500, -1), leg(C, 505, 1, FEB)], "diagonal"),
        ([leg(C, 500, 1), leg(C, 505, -2)], "ratio spread"),
        ([leg(C, 495, 1), leg(C, 500, -2), leg(C, 505, 1)], "call butterfly"),
        ([leg(C, 495, 1), leg(C, 500, -2), leg(C, 510, 1)], "custom"),
        (
            [leg(P, 490, 1), leg(P, 495, -1), leg(C, 505, -1), leg(C, 510, 1)],
            "iron condor",
        ),
        (
            [leg(P, 495, 1), leg(P, 500, -1), leg(C, 500, -1), leg(C, 505, 1)],
            "iron butterfly",
        ),
        (
            [leg(P, 490, -1), leg(P, 495, 1), leg(C, 505, 1), leg(C, 510, -1)],
            "reverse iron condor",
        ),
        ([leg(P, 490, 1), leg(P, 495, -1), leg(C, 505, -2), leg(C, 510, 2)], "custom"),
        (
            [leg(C, 500, 1), leg(C, 505, 1), leg(C, 510, 1), leg(C, 515, 1), leg(C, 520, 1)],
            "custom",
        ),
    ],
)
def test_describe(legs: list[OptionLeg], kind: str) -> None:
    assert describe(legs) == kind
