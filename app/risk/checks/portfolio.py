"""Portfolio checks: open positions, concentration per symbol and per sector."""

from __future__ import annotations

from typing import Any

from app.portfolio.book import AccountBook
from app.risk.checks.base import Check, Ctx, RiskDecision, pct_text
from app.risk.limits import (
    ConcentrationLimits,
    OpenPositionsLimits,
    SectorLimits,
)
from app.risk.state import RiskState


class MaxOpenPositionsCheck(Check):
    name = "max_open_positions"
    layer = "portfolio"
    new_risk_only = True

    def __init__(self, cfg: OpenPositionsLimits) -> None:
        self.max_positions = cfg.max_positions

    def evaluate(self, c: Ctx) -> RiskDecision | None:
        sym = c.sym
        if sym.qty or sym.pending_buy or sym.pending_sell:
            return None  # not a new position
        count = c.book.open_positions + c.book.pending_new
        if count < self.max_positions:
            return None
        return self.deny(
            "max_open_positions",
            f"{count} positions open or opening (max {self.max_positions})",
            count=count,
            limit=self.max_positions,
        )

    def describe(self, book: AccountBook, state: RiskState, now: float) -> dict[str, Any]:
        return {"used": book.open_positions + book.pending_new, "limit": self.max_positions}


class ConcentrationCheck(Check):
    name = "concentration"
    layer = "portfolio"
    new_risk_only = True

    def __init__(self, cfg: ConcentrationLimits) -> None:
        self.max_pct = cfg.max_pct

    def evaluate(self, c: Ctx) -> RiskDecision | None:
        assert c.price is not None
        equity = c.book.cash + c.book.net_mv
        if (denied := self.without_equity(equity)) is not None:
            return denied
        pct = abs(c.new_qty) * c.price * c.mult / equity * 100.0
        if pct <= self.max_pct:
            return None
        return self.deny(
            "max_concentration",
            f"{c.order.symbol} would be {pct_text(pct)} of equity (max {pct_text(self.max_pct)})",
            pct=pct,
            limit_pct=self.max_pct,
        )

    def describe(self, book: AccountBook, state: RiskState, now: float) -> dict[str, Any]:
        eq = book.equity
        top = max((abs(h.mv) for h in book.holdings.values()), default=0.0)
        return {"used_pct": top / eq * 100 if eq > 0 else None, "limit_pct": self.max_pct}


class SectorConcentrationCheck(Check):
    name = "sector_concentration"
    layer = "portfolio"
    new_risk_only = True

    def __init__(self, cfg: SectorLimits) -> None:
        self.max_pct = cfg.max_pct

    def evaluate(self, c: Ctx) -> RiskDecision | None:
        assert c.price is not None
        book, sym = c.book, c.sym
        equity = book.cash + book.net_mv
        if (denied := self.without_equity(equity)) is not None:
            return denied
        after = (
            book.sector_gross.get(sym.sector, 0.0) - abs(sym.mv) + abs(c.new_qty) * c.price * c.mult
        )
        pct = after / equity * 100.0
        if pct <= self.max_pct:
            return None
        return self.deny(
            "max_sector_concentration",
            f"sector {sym.sector} would be {pct_text(pct)} of equity (max {pct_text(self.max_pct)})",
            sector=sym.sector,
            pct=pct,
            limit_pct=self.max_pct,
        )

    def describe(self, book: AccountBook, state: RiskState, now: float) -> dict[str, Any]:
        eq = book.equity
        return {
            "used_pct": {k: v / eq * 100 for k, v in book.sector_gross.items()} if eq > 0 else {},
            "limit_pct": self.max_pct,
        }
