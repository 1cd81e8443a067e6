"""What the risk engine keeps of its own between checks (the positions, cash and working
orders it reads are the account's book: ``app/portfolio/book.py``).

Plain slotted classes updated in O(1) by the engine's hooks, so a check reads a
handful of attributes.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from app.models.orders import Intent

# Trading seconds in a year (252 sessions x 6.5 h): annualises per-second variance.
TRADING_SECONDS_PER_YEAR = 252 * 6.5 * 3600


class Volatility:
    """Rolling realised volatility of quote log-returns, O(1) per quote.

    Variance is normalised by elapsed time (sum r^2 / sum dt), so the number does not
    depend on how often quotes arrive; returns across gaps (overnight, halts) are
    skipped because they measure the gap, not the current market.
    """

    __slots__ = ("_dt", "_i", "_r2", "_updates", "count", "sum_dt", "sum_r2")

    def __init__(self, window: int) -> None:
        self._r2 = [0.0] * window
        self._dt = [0.0] * window
        self._i = 0
        self._updates = 0
        self.count = 0
        self.sum_r2 = 0.0
        self.sum_dt = 0.0

    def add(self, r2: float, dt: float) -> None:
        i = self._i
        if self.count == len(self._r2):
            self.sum_r2 -= self._r2[i]
            self.sum_dt -= self._dt[i]
        else:
            self.count += 1
        self._r2[i] = r2
        self._dt[i] = dt
        self.sum_r2 += r2
        self.sum_dt += dt
        self._i = (i + 1) % len(self._r2)
        self._updates += 1
        if self._updates % 4096 == 0:  # re-sum now and then: running sums drift
            n = self.count
            self.sum_r2 = math.fsum(self._r2[:n]) if n < len(self._r2) else math.fsum(self._r2)
            self.sum_dt = math.fsum(self._dt[:n]) if n < len(self._dt) else math.fsum(self._dt)

    def annualized(self) -> float:
        """Annualised volatility as a fraction (0.25 = 25 %); 0.0 before any return."""
        if self.sum_dt <= 0.0 or self.sum_r2 <= 0.0:
            return 0.0
        return math.sqrt(self.sum_r2 / self.sum_dt * TRADING_SECONDS_PER_YEAR)


@dataclass(slots=True, eq=False)
class SymbolRisk:
    """What risk keeps per symbol of its own: the symbol's order window and volatility."""

    submits: deque[float] = field(default_factory=deque)
    vol: Volatility | None = None
    last: float | None = None  # the previous quote, for the next return
    last_ts: float = 0.0


@dataclass(slots=True, eq=False)
class RiskState:
    """Risk's own state, beside the book it reads: order windows, recent orders (the
    duplicate guard), the daily loss latch, and per-symbol windows and volatility."""

    submits: deque[float] = field(default_factory=deque)
    recent: dict[tuple[str, Intent, float], float] = field(default_factory=dict)
    daily_loss_hit: bool = False  # latched until the next trading day
    symbols: dict[str, SymbolRisk] = field(default_factory=dict)
