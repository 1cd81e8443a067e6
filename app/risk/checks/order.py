"""Order and strategy checks: position size, notional, price collar, quantity, volatility, duplicates."""

from __future__ import annotations

from typing import Any

from app.portfolio.book import AccountBook
from app.risk.checks.base import Check, Ctx, PerStrategyCheck, RiskDecision, pct_text
from app.risk.limits import (
    DuplicateLimits,
    OrderNotionalLimits,
    PositionSizeLimits,
    PriceCollarLimits,
    QuantityLimits,
    VolatilityLimits,
)
from app.risk.state import RiskState


class PositionSizeCheck(PerStrategyCheck[PositionSizeLimits]):
    name = "position_size"
    layer = "order"
    new_risk_only = True

    def check(self, c: Ctx, cfg: PositionSizeLimits) -> RiskDecision | None:
        shares = abs(c.new_qty)
        if cfg.max_shares is not None and shares > cfg.max_shares:
            return self.deny(
                "max_position_shares",
                f"{c.order.symbol} position would reach {shares} shares (max {cfg.max_shares})",
                shares=shares,
                limit=cfg.max_shares,
            )
        if cfg.max_notional is not None:
            assert c.price is not None
            notional = shares * c.price * c.mult
            if notional > cfg.max_notional:
                return self.deny(
                    "max_position_notional",
                    f"{c.order.symbol} position would be ${notional:,.2f} "
                    f"(max ${cfg.max_notional:,.2f})",
                    notional=notional,
                    limit=cfg.max_notional,
                )
        return None

    def describe(self, book: AccountBook, state: RiskState, now: float) -> dict[str, Any]:
        d = self.default
        return {
            "max_shares": d.max_shares if d else None,
            "max_notional": d.max_notional if d else None,
            "largest_shares": max((abs(h.qty) for h in book.holdings.values()), default=0),
        }


class OrderNotionalCheck(PerStrategyCheck[OrderNotionalLimits]):
    """Fat-finger size guard; reducing orders are bounded by the position instead."""

    name = "order_notional"
    layer = "order"
    new_risk_only = True

    def check(self, c: Ctx, cfg: OrderNotionalLimits) -> RiskDecision | None:
        assert c.price is not None
        notional = c.qty * c.price * c.mult
        if notional <= cfg.max_notional:
            return None
        return self.deny(
            "max_order_notional",
            f"order notional ${notional:,.2f} > ${cfg.max_notional:,.2f}",
            notional=notional,
            limit=cfg.max_notional,
        )

    def describe(self, book: AccountBook, state: RiskState, now: float) -> dict[str, Any]:
        return {"max_notional": self.default.max_notional if self.default else None}


class PriceCollarCheck(Check):
    """A limit or stop far from the last trade is more often a typo than a strategy."""

    name = "price_collar"
    layer = "order"

    def __init__(self, cfg: PriceCollarLimits) -> None:
        self.frac = cfg.max_deviation_pct / 100.0
        self.max_pct = cfg.max_deviation_pct
        self.require_quote = cfg.require_quote
        self.max_age = cfg.max_quote_age_seconds

    def evaluate(self, c: Ctx) -> RiskDecision | None:
        order = c.order
        limit, stop = order.limit_price, order.stop_price
        if limit is None and stop is None:
            return None
        last = c.sym.last
        if last is not None and self.max_age is not None and c.now - c.sym.last_ts > self.max_age:
            last = None
        if last is None:
            if self.require_quote:
                return self.deny(
                    "no_quote", f"no recent quote for {order.symbol} to collar against"
                )
            return None
        band = last * self.frac
        for kind, px in (("limit", limit), ("stop", stop)):
            if px is not None and abs(px - last) > band:
                pct = abs(px - last) / last * 100.0
                return self.deny(
                    "price_collar",
                    f"{kind} price {px:g} is {pct_text(pct)} from last {last:g} "
                    f"(max {pct_text(self.max_pct)})",
                    price=px,
                    last=last,
                    pct=pct,
                    limit_pct=self.max_pct,
                )
        return None

    def describe(self, book: AccountBook, state: RiskState, now: float) -> dict[str, Any]:
        return {"max_deviation_pct": self.max_pct, "require_quote": self.require_quote}


class QuantityCheck(PerStrategyCheck[QuantityLimits]):
    name = "quantity"
    layer = "order"
    new_risk_only = True

    def check(self, c: Ctx, cfg: QuantityLimits) -> RiskDecision | None:
        qty = c.qty
        if qty < cfg.min_quantity:
            return self.deny(
                "below_min_quantity",
                f"quantity {qty} < minimum {cfg.min_quantity}",
                quantity=qty,
                limit=cfg.min_quantity,
            )
        if cfg.max_quantity is not None and qty > cfg.max_quantity:
            return self.deny(
                "above_max_quantity",
                f"quantity {qty} > maximum {cfg.max_quantity}",
                quantity=qty,
                limit=cfg.max_quantity,
            )
        return None

    def describe(self, book: AccountBook, state: RiskState, now: float) -> dict[str, Any]:
        d = self.default
        return {"min": d.min_quantity if d else None, "max": d.max_quantity if d else None}


class VolatilityCheck(Check):
    name = "volatility"
    layer = "order"
    new_risk_only = True

    def __init__(self, cfg: VolatilityLimits) -> None:
        self.max_pct = cfg.max_annualized_pct
        self.min_samples = cfg.min_samples

    def evaluate(self, c: Ctx) -> RiskDecision | None:
        vol = c.srisk.vol
        if vol is None or vol.count < self.min_samples:
            return None
        pct = vol.annualized() * 100.0
        if pct <= self.max_pct:
            return None
        return self.deny(
            "volatility",
            f"{c.order.symbol} realised volatility {pct:.0f}% annualised > {self.max_pct:g}%",
            annualized_pct=pct,
            limit_pct=self.max_pct,
            samples=vol.count,
        )

    def describe(self, book: AccountBook, state: RiskState, now: float) -> dict[str, Any]:
        vols = {
            symbol: round(s.vol.annualized() * 100, 2)
            for symbol, s in state.symbols.items()
            if s.vol is not None and s.vol.count >= self.min_samples
        }
        return {"annualized_pct": vols, "limit_pct": self.max_pct}


class DuplicateCheck(Check):
    """Same symbol + intent + quantity within the window: a retried alert, not a new idea."""

    name = "duplicate"
    layer = "order"

    def __init__(self, cfg: DuplicateLimits) -> None:
        self.window = cfg.window_seconds

    def evaluate(self, c: Ctx) -> RiskDecision | None:
        order = c.order
        ts = c.state.recent.get((order.symbol, order.intent, order.quantity))
        if ts is None or c.now - ts >= self.window:
            return None
        return self.deny(
            "duplicate_order",
            f"same {order.intent.value} {order.quantity} {order.symbol} "
            f"{c.now - ts:.1f}s ago (window {self.window:g}s)",
            seconds_ago=c.now - ts,
            window_s=self.window,
        )

    def describe(self, book: AccountBook, state: RiskState, now: float) -> dict[str, Any]:
        return {"window_s": self.window}
