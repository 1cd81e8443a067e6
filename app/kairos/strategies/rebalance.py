"""Threshold rebalance: when any holding drifts more than ``drift_threshold`` from its target
weight, trade every holding back to target (whole shares, skipping trades under
``min_trade_value``). Sells come first so their proceeds fund the buys.

Weights are of account equity, so cash the targets leave over (1 - sum of weights) stays
cash. Only the job's symbols are traded; other strategies' positions are left alone.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.kairos.calendar import get_calendar
from app.kairos.models import Action, Signal
from app.kairos.strategies.base import DataNeeds, StrategyContext


class RebalanceParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    targets: dict[str, float] = Field(min_length=1, description="symbol -> weight of equity")
    drift_threshold: float = Field(0.05, gt=0, lt=1, description="absolute weight points")
    min_trade_value: float = Field(100.0, ge=0, description="dollars")

    @field_validator("targets")
    @classmethod
    def _weights(cls, value: dict[str, float]) -> dict[str, float]:
        out = {k.strip().upper(): float(v) for k, v in value.items()}
        if any(w < 0 for w in out.values()):
            raise ValueError("weights must be >= 0")
        if math.fsum(out.values()) > 1 + 1e-9:
            raise ValueError(f"weights sum to {math.fsum(out.values()):.4f}, more than 1")
        return out


class Rebalance:
    name = "rebalance"
    Params = RebalanceParams

    def __init__(self, params: RebalanceParams) -> None:
        self.params = params

    def needs(self) -> DataNeeds:
        return DataNeeds(quotes=True, positions=True)

    def check_symbols(self, symbols: list[str]) -> None:
        """Targets and job symbols must agree, so a typo never leaves a holding unmanaged."""
        targets = set(self.params.targets)
        if targets != set(symbols):
            missing, extra = sorted(set(symbols) - targets), sorted(targets - set(symbols))
            parts = [f"no target for {', '.join(missing)}"] if missing else []
            parts += [f"{', '.join(extra)} not in symbols"] if extra else []
            raise ValueError("targets must match symbols: " + "; ".join(parts))

    def evaluate(self, ctx: StrategyContext) -> list[Signal]:
        if ctx.account is None or ctx.account.equity <= 0:
            return []
        equity = ctx.account.equity
        # One rebalance decision per trading day: the session date is the "bar".
        day = get_calendar(ctx.job.calendar).local_date(ctx.now)
        bar_time = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())
        prices: dict[str, float] = {}
        values: dict[str, float] = {}
        for symbol in self.params.targets:
            quote, pos = ctx.quotes.get(symbol), ctx.positions.get(symbol)
            price = quote.last if quote is not None else (pos.last_price if pos else None)
            if price is not None and price > 0:
                prices[symbol] = price
            values[symbol] = pos.value if pos is not None else 0.0
        drift = max(abs(values[s] / equity - w) for s, w in self.params.targets.items())
        if drift <= self.params.drift_threshold:
            return []
        sells: list[Signal] = []
        buys: list[Signal] = []
        for symbol, weight in self.params.targets.items():
            price = prices.get(symbol)
            if price is None:
                continue  # no price, no trade: better to under-trade than guess
            held = ctx.held(symbol)
            delta_shares = math.trunc((weight * equity - values[symbol]) / price)
            if delta_shares == 0 or abs(delta_shares) * price < self.params.min_trade_value:
                continue
            why = f"weight {values[symbol] / equity:.2%} -> {weight:.2%} (max drift {drift:.2%})"
            if delta_shares > 0:
                buys.append(_order(symbol, Action.BUY, delta_shares, bar_time, price, why))
            elif weight == 0 and -delta_shares >= held > 0:
                sells.append(_order(symbol, Action.EXIT, None, bar_time, price, why))
            else:
                sells.append(_order(symbol, Action.SELL, -delta_shares, bar_time, price, why))
        return sells + buys


def _order(
    symbol: str, action: Action, qty: int | None, bar_time: int, price: float, why: str
) -> Signal:
    return Signal(
        symbol=symbol, action=action, quantity=qty, bar_time=bar_time, price=price, reason=why
    )
