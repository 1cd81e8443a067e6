"""System checks: kill switch, breaker, market hours, rate limits, a reference price."""

from __future__ import annotations

from typing import Any

from app.portfolio.book import AccountBook
from app.risk.breaker import CircuitBreaker
from app.risk.checks.base import Check, Ctx, RiskDecision
from app.risk.killswitch import KillState, KillSwitch
from app.risk.limits import (
    RateWindow,
)
from app.risk.state import RiskState
from app.sessions import SessionTable


class KillSwitchCheck(Check):
    name = "kill_switch"
    layer = "system"

    def __init__(self, switch: KillSwitch) -> None:
        self.switch = switch

    def evaluate(self, c: Ctx) -> RiskDecision | None:
        state = self.switch.state
        if state is KillState.ACTIVE:
            return None
        if state is KillState.HALTED:
            return self.deny("halted", "kill switch is HALTED: no orders", state=state.value)
        if c.reducing:
            return None
        return self.deny(
            "reducing_only",
            "kill switch is REDUCING: only orders that shrink a position without flipping it",
            state=state.value,
            position=c.sym.qty,
        )

    def describe(self, book: AccountBook, state: RiskState, now: float) -> dict[str, Any]:
        return self.switch.snapshot()


class CircuitBreakerCheck(Check):
    name = "circuit_breaker"
    layer = "system"

    def __init__(self, breaker: CircuitBreaker, block_reducing: bool) -> None:
        self.breaker = breaker
        self.new_risk_only = not block_reducing

    def evaluate(self, c: Ctx) -> RiskDecision | None:
        reason = self.breaker.blocked(c.now)
        if reason is None:
            return None
        b = self.breaker
        if reason == "open":
            msg = f"circuit breaker open ({b.trip_reason}) until {b.open_until:.0f}"
        else:
            msg = "circuit breaker half-open: waiting for the probe order's broker result"
        return self.deny(reason, msg, trip_reason=b.trip_reason, reopens_at=b.open_until)

    def describe(self, book: AccountBook, state: RiskState, now: float) -> dict[str, Any]:
        return self.breaker.snapshot(now)


class MarketHoursCheck(Check):
    name = "market_hours"
    layer = "system"

    def __init__(self, table: SessionTable) -> None:
        self.table = table

    def evaluate(self, c: Ctx) -> RiskDecision | None:
        t = self.table
        if t.is_open(c.now):
            return None
        if not t.covers(c.now):
            return self.deny(
                "calendar_out_of_range",
                f"{t.calendar} session table does not cover this time: restart to rebuild it",
                table_end=t.end,
            )
        return self.deny("market_closed", f"{t.calendar} is closed", next_open=t.next_open(c.now))

    def describe(self, book: AccountBook, state: RiskState, now: float) -> dict[str, Any]:
        t = self.table
        return {
            "calendar": t.calendar,
            "open": t.is_open(now),
            "closes_at": t.current_close(now),
            "next_open": t.next_open(now),
        }


class RateLimitCheck(Check):
    """Sliding windows of submit times (recorded by ``on_order_submitted``)."""

    name = "rate_limit"
    layer = "system"

    def __init__(self, global_: RateWindow | None, per_symbol: RateWindow | None) -> None:
        self.global_ = global_
        self.per_symbol = per_symbol

    def evaluate(self, c: Ctx) -> RiskDecision | None:
        g = self.global_
        if g is not None:
            q = c.state.submits
            horizon = c.now - g.window_seconds
            while q and q[0] <= horizon:
                q.popleft()
            if len(q) >= g.max_orders:
                return self.deny(
                    "global_rate_exceeded",
                    f"{len(q)} orders in the last {g.window_seconds:g}s (max {g.max_orders})",
                    count=len(q),
                    limit=g.max_orders,
                    window_s=g.window_seconds,
                )
        p = self.per_symbol
        if p is not None:
            q = c.srisk.submits
            horizon = c.now - p.window_seconds
            while q and q[0] <= horizon:
                q.popleft()
            if len(q) >= p.max_orders:
                return self.deny(
                    "symbol_rate_exceeded",
                    f"{len(q)} {c.order.symbol} orders in the last {p.window_seconds:g}s "
                    f"(max {p.max_orders})",
                    count=len(q),
                    limit=p.max_orders,
                    window_s=p.window_seconds,
                )
        return None

    def describe(self, book: AccountBook, state: RiskState, now: float) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.global_ is not None:
            h = now - self.global_.window_seconds
            out["global"] = {
                "used": sum(1 for t in state.submits if t > h),
                "limit": self.global_.max_orders,
                "window_s": self.global_.window_seconds,
            }
        if self.per_symbol is not None:
            h = now - self.per_symbol.window_seconds
            busiest = max(
                (sum(1 for t in s.submits if t > h) for s in state.symbols.values()), default=0
            )
            out["per_symbol"] = {
                "used_max": busiest,
                "limit": self.per_symbol.max_orders,
                "window_s": self.per_symbol.window_seconds,
            }
        return out


class ReferencePriceCheck(Check):
    """Notional checks need a price: the caller's, the order's limit/stop, or the last quote."""

    name = "reference_price"
    layer = "system"
    new_risk_only = True

    def evaluate(self, c: Ctx) -> RiskDecision | None:
        if c.price is not None:
            return None
        return self.deny(
            "no_price", f"no price for {c.order.symbol}: no quote yet and no limit price"
        )
