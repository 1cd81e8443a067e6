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
from app.portfolio.book import AccountBook, Holding
from app.risk.state import RiskState, SymbolRisk

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
    """Everything a check needs about one order, computed once per ``check()`` call: the
    account's book and the symbol's holding in it (read only), risk's own state, and
    the order's worst-case resulting position."""

    __slots__ = (
        "book",
        "mult",
        "new_qty",
        "now",
        "option",
        "order",
        "price",
        "qty",
        "reducing",
        "sign",
        "srisk",
        "state",
        "sym",
    )

    def __init__(
        self,
        order: OrderRequest,
        now: float,
        book: AccountBook,
        sym: Holding,
        state: RiskState,
        srisk: SymbolRisk,
        sign: int,
        reducing: bool,
        price: float | None,
    ) -> None:
        self.order = order
        self.now = now
        self.book = book
        self.sym = sym
        self.state = state
        self.srisk = srisk
        self.sign = sign
        self.qty = order.quantity
        self.mult = sym.multiplier  # notional = quantity x price x multiplier
        self.reducing = reducing
        self.price = price
        self.option: Any = None  # an option order's legs (``checks/options.py``), else None
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

    def describe(self, book: AccountBook, state: RiskState, now: float) -> dict[str, Any]:
        return {}

    def deny(self, reason: str, message: str, **detail: Any) -> RiskDecision:
        return RiskDecision(False, self.name, reason, message, detail)

    def without_equity(self, equity: float) -> RiskDecision | None:
        """New exposure needs positive equity (the percent checks divide by it)."""
        if equity > 0.0:
            return None
        return self.deny("no_equity", f"equity ${equity:,.2f}: no new exposure", equity=equity)


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


def pct_text(x: float) -> str:
    return f"{x:.2f}%"


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
    "option_buying_power",
    "naked_call",
    "short_put",
    "option_contracts",
    "option_premium",
    "option_max_loss",
    "option_dte",
    "option_spread",
    "option_delta",
)
"""Evaluation order: system, account, portfolio, order/strategy, options."""
# checks that price an order as shares (notional = quantity x price x multiplier of its
# symbol): a spread has no one symbol or price, so the option checks stand in for them
SHARE_ONLY = frozenset(
    {
        "buying_power",
        "leverage",
        "concentration",
        "sector_concentration",
        "position_size",
        "order_notional",
        "price_collar",
    }
)
