"""Prices and worst cases of a combination of option legs (per unit, per share).

Net prices are signed: positive is a debit (paid), negative a credit (received). The
worst case is the payoff at expiry, which is piecewise linear in the underlying with
kinks at the strikes: its minimum is at 0, at a strike, or unbounded past the highest
strike (more calls sold than bought), so checking those points is exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from app.models.occ import OptionRight

TICK = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class Leg:
    """What pricing needs of a leg: direction, ratio, contract terms and its quote."""

    buy: bool
    ratio: int
    right: OptionRight
    strike: Decimal
    bid: float | None = None
    ask: float | None = None

    @property
    def sign(self) -> int:
        return 1 if self.buy else -1


def net_mid(legs: Sequence[Leg]) -> float | None:
    """Signed net of the mids (None when a leg has no two-sided quote)."""
    total = 0.0
    for leg in legs:
        if leg.bid is None or leg.ask is None:
            return None
        total += leg.sign * leg.ratio * (leg.bid + leg.ask) / 2
    return total


def net_natural(legs: Sequence[Leg]) -> float | None:
    """Signed net crossing every spread: pay the ask on buys, take the bid on sells."""
    total = 0.0
    for leg in legs:
        px = leg.ask if leg.buy else leg.bid
        if px is None:
            return None
        total += leg.sign * leg.ratio * px
    return total


def to_tick(net: float, *, paying: bool) -> Decimal:
    """A net price on the cent, rounded in our favour (a debit down, a credit up)."""
    value = Decimal(repr(abs(net)))
    mode = ROUND_FLOOR if paying else ROUND_CEILING
    return (value / TICK).to_integral_value(mode) * TICK


def _intrinsic(right: OptionRight, strike: float, spot: float) -> float:
    return max(0.0, spot - strike) if right is OptionRight.CALL else max(0.0, strike - spot)


def payoff(legs: Sequence[Leg], net: float, spot: float) -> float:
    """Per share per unit at expiry, after the net paid (+) or received (-)."""
    return (
        sum(leg.sign * leg.ratio * _intrinsic(leg.right, float(leg.strike), spot) for leg in legs)
        - net
    )


def worst_loss(legs: Sequence[Leg], net: float) -> float | None:
    """The most a unit can lose at expiry, per share (x100 per contract); None: unbounded."""
    call_slope = sum(leg.sign * leg.ratio for leg in legs if leg.right is OptionRight.CALL)
    if call_slope < 0:
        return None
    points = [0.0, *sorted({float(leg.strike) for leg in legs})]
    worst = min(payoff(legs, net, s) for s in points)
    return max(0.0, -worst)
