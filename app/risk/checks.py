"""The pre-trade checks: one small class each, named, with machine-readable reasons.

A check reads the :class:`Ctx` the engine prepared (price, projected position,
whether the order only reduces exposure) and returns ``None`` to pass or a
:class:`RiskDecision` to deny. Messages are only formatted on a denial, so the
passing path stays at a few attribute reads.

``new_risk_only`` checks guard against *new* risk and are skipped for orders that
only reduce a position without flipping it: a trader must always be able to get
out. The kill switch, market hours, rate limits, price collar and duplicate guard
apply to every order (and the breaker too, if ``block_reducing``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from app.models.orders import OrderRequest
from app.risk.breaker import CircuitBreaker
from app.risk.killswitch import KillState, KillSwitch
from app.risk.limits import (
    ConcentrationLimits,
    DailyLossLimits,
    DuplicateLimits,
    LeverageLimits,
    MinBalanceLimits,
    OpenPositionsLimits,
    OrderNotionalLimits,
    PositionSizeLimits,
    PriceCollarLimits,
    QuantityLimits,
    RateWindow,
    SectorLimits,
    VolatilityLimits,
)
from app.risk.market_hours import SessionTable
from app.risk.state import BookState, SymbolState

L = TypeVar("L")


@dataclass(slots=True, frozen=True)
class RiskDecision:
    """The verdict. ``check``/``reason`` are stable identifiers; ``message`` is for people."""

    allowed: bool
    check: str | None = None
    reason: str | None = None
    message: str = "allowed"
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "check": self.check,
            "reason": self.reason,
            "message": self.message,
            "detail": dict(self.detail),
        }


class Ctx:
    """Everything a check needs about one order, computed once per ``check()`` call."""

    __slots__ = ("book", "new_qty", "now", "order", "price", "qty", "reducing", "sign", "sym")

    def __init__(
        self,
        order: OrderRequest,
        now: float,
        book: BookState,
        sym: SymbolState,
        sign: int,
        reducing: bool,
        price: float | None,
    ) -> None:
        self.order = order
        self.now = now
        self.book = book
        self.sym = sym
        self.sign = sign
        self.qty = order.quantity
        self.reducing = reducing
        self.price = price
        # Worst case: the position plus every working order on the same side plus this one.
        if sign > 0:
            self.new_qty = sym.qty + sym.pending_buy + order.quantity
        else:
            self.new_qty = sym.qty - sym.pending_sell - order.quantity


class Check:
    """Base: a name, a layer, and ``evaluate``. ``describe`` feeds ``snapshot()``."""

    name: ClassVar[str]
    layer: ClassVar[str]
    new_risk_only: bool = False

    def evaluate(self, c: Ctx) -> RiskDecision | None:
        raise NotImplementedError

    def describe(self, book: BookState, now: float) -> dict[str, Any]:
        return {}

    def deny(self, reason: str, message: str, **detail: Any) -> RiskDecision:
        return RiskDecision(False, self.name, reason, message, detail)


class PerStrategyCheck(Check, Generic[L]):
    """A check whose limits can differ per strategy (``default`` for the others)."""

    def __init__(self, default: L | None, by_strategy: dict[str, L | None]) -> None:
        self.default = default
        self.by_strategy = by_strategy

    def evaluate(self, c: Ctx) -> RiskDecision | None:
        cfg = (
            self.by_strategy.get(c.order.strategy, self.default)
            if self.by_strategy
            else self.default
        )
        return None if cfg is None else self.check(c, cfg)

    def check(self, c: Ctx, cfg: L) -> RiskDecision | None:
        raise NotImplementedError


def _pct(x: float) -> str:
    return f"{x:.2f}%"


# -- system ---------------------------------------------------------------------------
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

    def describe(self, book: BookState, now: float) -> dict[str, Any]:
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

    def describe(self, book: BookState, now: float) -> dict[str, Any]:
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

    def describe(self, book: BookState, now: float) -> dict[str, Any]:
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
            q = c.book.submits
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
            q = c.sym.submits
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

    def describe(self, book: BookState, now: float) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.global_ is not None:
            h = now - self.global_.window_seconds
            out["global"] = {
                "used": sum(1 for t in book.submits if t > h),
                "limit": self.global_.max_orders,
                "window_s": self.global_.window_seconds,
            }
        if self.per_symbol is not None:
            h = now - self.per_symbol.window_seconds
            busiest = max(
                (sum(1 for t in s.submits if t > h) for s in book.symbols.values()), default=0
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


# -- account --------------------------------------------------------------------------
class BuyingPowerCheck(Check):
    name = "buying_power"
    layer = "account"
    new_risk_only = True

    def evaluate(self, c: Ctx) -> RiskDecision | None:
        assert c.price is not None  # ReferencePriceCheck runs first
        book = c.book
        needed = c.qty * c.price + book.pending_open_notional
        if needed <= book.buying_power:
            return None
        return self.deny(
            "insufficient_buying_power",
            f"needs ${needed:,.2f} (incl. working orders), buying power ${book.buying_power:,.2f}",
            needed=needed,
            buying_power=book.buying_power,
        )

    def describe(self, book: BookState, now: float) -> dict[str, Any]:
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
        if pnl > -self.max_loss and not book.daily_loss_hit:
            return None
        book.daily_loss_hit = True
        return self.deny(
            "daily_loss_limit",
            f"daily loss limit ${self.max_loss:,.2f} hit today (P&L now ${pnl:,.2f}); "
            "only reducing orders until the next session",
            pnl=pnl,
            limit=self.max_loss,
        )

    def describe(self, book: BookState, now: float) -> dict[str, Any]:
        start = book.day_start_equity
        pnl = None if start is None else book.equity - start
        return {
            "pnl": pnl,
            "limit": self.max_loss,
            "hit": book.daily_loss_hit,
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
            after = book.cash - c.qty * c.price
            if after < self.min_cash:
                return self.deny(
                    "below_min_cash",
                    f"cash after the order ${after:,.2f} < ${self.min_cash:,.2f} minimum",
                    cash_after=after,
                    limit=self.min_cash,
                )
        return None

    def describe(self, book: BookState, now: float) -> dict[str, Any]:
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
        if equity <= 0.0:
            return self.deny("no_equity", f"equity ${equity:,.2f}: no new exposure", equity=equity)
        after = (
            book.gross
            + book.pending_open_notional
            - abs(sym.mv)
            + abs((sym.qty + c.sign * c.qty) * c.price)
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

    def describe(self, book: BookState, now: float) -> dict[str, Any]:
        eq = book.equity
        used = (book.gross + book.pending_open_notional) / eq if eq > 0 else None
        return {"used": used, "limit": self.max_leverage, "gross": book.gross, "equity": eq}


# -- portfolio ------------------------------------------------------------------------
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

    def describe(self, book: BookState, now: float) -> dict[str, Any]:
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
        if equity <= 0.0:
            return self.deny("no_equity", f"equity ${equity:,.2f}: no new exposure", equity=equity)
        pct = abs(c.new_qty) * c.price / equity * 100.0
        if pct <= self.max_pct:
            return None
        return self.deny(
            "max_concentration",
            f"{c.order.symbol} would be {_pct(pct)} of equity (max {_pct(self.max_pct)})",
            pct=pct,
            limit_pct=self.max_pct,
        )

    def describe(self, book: BookState, now: float) -> dict[str, Any]:
        eq = book.equity
        top = max((abs(s.mv) for s in book.symbols.values()), default=0.0)
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
        if equity <= 0.0:
            return self.deny("no_equity", f"equity ${equity:,.2f}: no new exposure", equity=equity)
        after = book.sector_gross.get(sym.sector, 0.0) - abs(sym.mv) + abs(c.new_qty) * c.price
        pct = after / equity * 100.0
        if pct <= self.max_pct:
            return None
        return self.deny(
            "max_sector_concentration",
            f"sector {sym.sector} would be {_pct(pct)} of equity (max {_pct(self.max_pct)})",
            sector=sym.sector,
            pct=pct,
            limit_pct=self.max_pct,
        )

    def describe(self, book: BookState, now: float) -> dict[str, Any]:
        eq = book.equity
        return {
            "used_pct": {k: v / eq * 100 for k, v in book.sector_gross.items()} if eq > 0 else {},
            "limit_pct": self.max_pct,
        }


# -- order / strategy -----------------------------------------------------------------
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
            notional = shares * c.price
            if notional > cfg.max_notional:
                return self.deny(
                    "max_position_notional",
                    f"{c.order.symbol} position would be ${notional:,.2f} "
                    f"(max ${cfg.max_notional:,.2f})",
                    notional=notional,
                    limit=cfg.max_notional,
                )
        return None

    def describe(self, book: BookState, now: float) -> dict[str, Any]:
        d = self.default
        return {
            "max_shares": d.max_shares if d else None,
            "max_notional": d.max_notional if d else None,
            "largest_shares": max((abs(s.qty) for s in book.symbols.values()), default=0),
        }


class OrderNotionalCheck(PerStrategyCheck[OrderNotionalLimits]):
    """Fat-finger size guard; reducing orders are bounded by the position instead."""

    name = "order_notional"
    layer = "order"
    new_risk_only = True

    def check(self, c: Ctx, cfg: OrderNotionalLimits) -> RiskDecision | None:
        assert c.price is not None
        notional = c.qty * c.price
        if notional <= cfg.max_notional:
            return None
        return self.deny(
            "max_order_notional",
            f"order notional ${notional:,.2f} > ${cfg.max_notional:,.2f}",
            notional=notional,
            limit=cfg.max_notional,
        )

    def describe(self, book: BookState, now: float) -> dict[str, Any]:
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
                    f"{kind} price {px:g} is {_pct(pct)} from last {last:g} "
                    f"(max {_pct(self.max_pct)})",
                    price=px,
                    last=last,
                    pct=pct,
                    limit_pct=self.max_pct,
                )
        return None

    def describe(self, book: BookState, now: float) -> dict[str, Any]:
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

    def describe(self, book: BookState, now: float) -> dict[str, Any]:
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
        vol = c.sym.vol
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

    def describe(self, book: BookState, now: float) -> dict[str, Any]:
        vols = {
            s.symbol: round(s.vol.annualized() * 100, 2)
            for s in book.symbols.values()
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
        ts = c.book.recent.get((order.symbol, order.intent, order.quantity))
        if ts is None or c.now - ts >= self.window:
            return None
        return self.deny(
            "duplicate_order",
            f"same {order.intent.value} {order.quantity} {order.symbol} "
            f"{c.now - ts:.1f}s ago (window {self.window:g}s)",
            seconds_ago=c.now - ts,
            window_s=self.window,
        )

    def describe(self, book: BookState, now: float) -> dict[str, Any]:
        return {"window_s": self.window}


ORDER = (
    "kill_switch",
    "circuit_breaker",
    "market_hours",
    "rate_limit",
    "reference_price",
    "buying_power",
    "daily_loss",
    "min_balance",
    "leverage",
    "max_open_positions",
    "concentration",
    "sector_concentration",
    "position_size",
    "order_notional",
    "price_collar",
    "quantity",
    "volatility",
    "duplicate",
)
"""Evaluation order: system, account, portfolio, order/strategy."""
