"""Position sizing per strategy: how many shares an alert becomes."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, Field

from app.models.alerts import Alert


class SizingError(ValueError):
    """The alert cannot be sized (no quantity, no stop for risk sizing...)."""


class SizingRule(BaseModel):
    """``signal``: the alert's quantity (else ``quantity``); ``fixed``: always ``quantity``;
    ``percent_equity``: ``percent`` of equity; ``dollar``: ``dollars`` worth;
    ``risk``: lose at most ``risk_percent`` of equity if the alert's stop is hit.
    """

    mode: Literal["signal", "fixed", "percent_equity", "dollar", "risk"] = "signal"
    quantity: int | None = Field(None, gt=0)
    percent: float | None = Field(None, gt=0, le=100)
    dollars: float | None = Field(None, gt=0)
    risk_percent: float | None = Field(None, gt=0, le=100)


class SizingConfig(BaseModel):
    default: SizingRule = SizingRule()
    strategies: dict[str, SizingRule] = Field(default_factory=dict)

    def rule(self, strategy: str) -> SizingRule:
        return self.strategies.get(strategy, self.default)


def size(rule: SizingRule, alert: Alert, price: float, equity: float) -> int:
    """Shares for an opening alert; raises SizingError with the reason when it cannot."""
    if rule.mode == "signal":
        qty = alert.quantity if alert.quantity is not None else rule.quantity
        if qty is None:
            raise SizingError(
                f"alert has no quantity and strategy {alert.strategy!r} sizes by signal with no default quantity"
            )
        return int(qty)
    if rule.mode == "fixed":
        if rule.quantity is None:
            raise SizingError("fixed sizing needs quantity")
        return rule.quantity
    if price <= 0:
        raise SizingError("no price to size against")
    if rule.mode == "percent_equity":
        if rule.percent is None:
            raise SizingError("percent_equity sizing needs percent")
        return math.floor(equity * rule.percent / 100 / price)
    if rule.mode == "dollar":
        if rule.dollars is None:
            raise SizingError("dollar sizing needs dollars")
        return math.floor(rule.dollars / price)
    if rule.risk_percent is None:
        raise SizingError("risk sizing needs risk_percent")
    if alert.stop_loss is None:
        raise SizingError("risk sizing needs a stop_loss in the alert")
    per_share = abs(price - alert.stop_loss)
    if per_share <= 0:
        raise SizingError("stop_loss equals the entry price")
    return math.floor(equity * rule.risk_percent / 100 / per_share)
