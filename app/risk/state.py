"""What the engine knows between checks: book, quotes, working orders, recent submits.

Plain slotted classes, updated incrementally by the execution engine's hooks, so a
check reads a handful of attributes instead of walking the portfolio. Totals that
quotes move (net and gross market value, per-sector gross) are kept as running sums
and recomputed exactly whenever a position changes, so float drift cannot build up.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from app.models.orders import Intent

# Signed direction of each intent: +1 buys shares, -1 sells them.
SIGN: dict[Intent, int] = {
    Intent.BUY: 1,
    Intent.BUY_TO_COVER: 1,
    Intent.SELL: -1,
    Intent.SELL_SHORT: -1,
}
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
class SymbolState:
    symbol: str
    sector: str
    qty: int = 0  # signed: negative is short
    avg_price: float = 0.0
    last: float | None = None
    last_ts: float = 0.0
    mv: float = 0.0  # qty * mark (last, else avg price)
    pending_buy: int = 0  # working buy-side shares (BUY, BUY_TO_COVER)
    pending_sell: int = 0  # working sell-side shares (SELL, SELL_SHORT)
    vol: Volatility | None = None
    submits: deque[float] = field(default_factory=deque)

    @property
    def mark(self) -> float:
        return self.last if self.last is not None else self.avg_price


@dataclass(slots=True, eq=False)
class WorkingOrder:
    """An order sent but not finished: it can still add exposure, so checks count it."""

    symbol: str
    sign: int
    remaining: int
    price: float  # reference price at submit: prices its opening notional
    opening: bool
    day: bool  # DAY orders die at the close; dropped at the daily roll-over


@dataclass(slots=True, eq=False)
class BookState:
    cash: float = 0.0
    buying_power: float = 0.0
    net_mv: float = 0.0
    gross: float = 0.0
    open_positions: int = 0
    pending_new: int = 0  # flat symbols with working orders: positions about to open
    sector_gross: dict[str, float] = field(default_factory=dict)
    symbols: dict[str, SymbolState] = field(default_factory=dict)
    working: dict[str, WorkingOrder] = field(default_factory=dict)
    pending_open_notional: float = 0.0
    account_seen: bool = False
    day_start_equity: float | None = None
    daily_loss_hit: bool = False  # latched until the next session start
    submits: deque[float] = field(default_factory=deque)
    recent: dict[tuple[str, Intent, int], float] = field(default_factory=dict)

    @property
    def equity(self) -> float:
        return self.cash + self.net_mv

    def recompute(self) -> None:
        """Exact totals from the positions (off the hot path: after position changes)."""
        net = gross = 0.0
        count = pending_new = 0
        sectors: dict[str, float] = {}
        for s in self.symbols.values():
            if not s.qty and (s.pending_buy or s.pending_sell):
                pending_new += 1
            if s.qty:
                s.mv = s.qty * s.mark
                net += s.mv
                gross += abs(s.mv)
                count += 1
                sectors[s.sector] = sectors.get(s.sector, 0.0) + abs(s.mv)
            else:
                s.mv = 0.0
        self.net_mv, self.gross, self.open_positions = net, gross, count
        self.pending_new = pending_new
        self.sector_gross = sectors
        self.pending_open_notional = sum(
            w.remaining * w.price for w in self.working.values() if w.opening
        )
