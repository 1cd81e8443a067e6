"""Account checks: buying power, daily loss, minimum balance, leverage (all read the book)."""

from __future__ import annotations

from typing import Any

from app.portfolio.book import AccountBook
from app.risk.checks.base import Check, Ctx, RiskDecision
from app.risk.limits import (
    DailyLossLimits,
    LeverageLimits,
    MinBalanceLimits,
)
from app.risk.state import RiskState


class BuyingPowerCheck(Check):
    name = "buying_power"
    layer = "account"
    new_risk_only = True

    def evaluate(self, c: Ctx) -> RiskDecision | None:
        assert c.price is not None  # ReferencePriceCheck runs first
        book = c.book
        needed = c.qty * c.price * c.mult + book.pending_open_notional
        if needed <= book.buying_power:
            return None
        return self.deny(
            "insufficient_buying_power",
            f"needs ${needed:,.2f} (incl. working orders), buying power ${book.buying_power:,.2f}",
            needed=needed,
            buying_power=book.buying_power,
        )

    def describe(self, book: AccountBook, state: RiskState, now: float) -> dict[str, Any]:
        return {"buying_power": book.buying_power, "reserved": book.pending_open_notional}


class DailyLossCheck(Check):
    """Loss since the day's start equity (realised + unrealised); resets each session.

    Latched: once the limit is hit (here, or by a quote/fill the engine marked) the day
    is over for new risk even if prices bounce back; only exits go through.
    """

    name = "daily_loss"
    layer = "account"
    new_risk_only = True

    def __init__(self, cfg: DailyLossLimits) -> None:
        self.max_loss = cfg.max_loss

    def evaluate(self, c: Ctx) -> RiskDecision | None:
        book = c.book
        start = book.day_start_equity
        if start is None:
            return None
        pnl = book.cash + book.net_mv - start
        if pnl > -self.max_loss and not c.state.daily_loss_hit:
            return None
        c.state.daily_loss_hit = True
        return self.deny(
            "daily_loss_limit",
            f"daily loss limit ${self.max_loss:,.2f} hit today (P&L now ${pnl:,.2f}); "
            "only reducing orders until the next session",
            pnl=pnl,
            limit=self.max_loss,
        )

    def describe(self, book: AccountBook, state: RiskState, now: float) -> dict[str, Any]:
        start = book.day_start_equity
        pnl = None if start is None else book.equity - start
        return {
            "pnl": pnl,
            "limit": self.max_loss,
            "hit": state.daily_loss_hit,
            "day_start_equity": start,
        }


class MinBalanceCheck(Check):
    name = "min_balance"
    layer = "account"
    new_risk_only = True

    def __init__(self, cfg: MinBalanceLimits) -> None:
        self.min_equity = cfg.min_equity
        self.min_cash = cfg.min_cash

    def evaluate(self, c: Ctx) -> RiskDecision | None:
        book = c.book
        if self.min_equity is not None:
            equity = book.cash + book.net_mv
            if equity < self.min_equity:
                return self.deny(
                    "below_min_equity",
                    f"equity ${equity:,.2f} is below the ${self.min_equity:,.2f} minimum",
                    equity=equity,
                    limit=self.min_equity,
                )
        if self.min_cash is not None and c.sign > 0:
            assert c.price is not None
            after = book.cash - c.qty * c.price * c.mult
            if after < self.min_cash:
                return self.deny(
                    "below_min_cash",
                    f"cash after the order ${after:,.2f} < ${self.min_cash:,.2f} minimum",
                    cash_after=after,
                    limit=self.min_cash,
                )
        return None

    def describe(self, book: AccountBook, state: RiskState, now: float) -> dict[str, Any]:
        return {
            "equity": book.equity,
            "min_equity": self.min_equity,
            "cash": book.cash,
            "min_cash": self.min_cash,
        }


class LeverageCheck(Check):
    name = "leverage"
    layer = "account"
    new_risk_only = True

    def __init__(self, cfg: LeverageLimits) -> None:
        self.max_leverage = cfg.max_leverage

    def evaluate(self, c: Ctx) -> RiskDecision | None:
        assert c.price is not None
        book, sym = c.book, c.sym
        equity = book.cash + book.net_mv
        if (denied := self.without_equity(equity)) is not None:
            return denied
        after = (
            book.gross
            + book.pending_open_notional
            - abs(sym.mv)
            + abs((sym.qty + c.sign * c.qty) * c.price * c.mult)
        )
        leverage = after / equity
        if leverage <= self.max_leverage:
            return None
        return self.deny(
            "max_leverage",
            f"leverage after the order {leverage:.2f}x > {self.max_leverage:g}x",
            leverage=leverage,
            limit=self.max_leverage,
        )

    def describe(self, book: AccountBook, state: RiskState, now: float) -> dict[str, Any]:
        eq = book.equity
        used = (book.gross + book.pending_open_notional) / eq if eq > 0 else None
        return {"used": used, "limit": self.max_leverage, "gross": book.gross, "equity": eq}
