"""Momentum: buy an oversold name (RSI) when volume breaks out; exit when RSI is overbought.

The volume spike is the tell that sellers are being absorbed rather than drifting
lower on no interest; the RSI exit takes the rebound without waiting for the target.
"""

from __future__ import annotations

from pydantic import Field

from app.kairos.indicators import rsi_last, volume_ratio
from app.kairos.models import Action, Signal
from app.kairos.strategies.base import BarStrategy, RsiParams, StrategyContext


class MomentumParams(RsiParams):
    lookback_field = "volume_period"

    volume_period: int = Field(20, ge=2, le=500)
    volume_multiplier: float = Field(1.5, gt=1)


class Momentum(BarStrategy[MomentumParams]):
    name = "momentum"
    Params = MomentumParams

    def evaluate(self, ctx: StrategyContext) -> list[Signal]:
        p = self.params
        exits: list[Signal] = []
        candidates: list[tuple[float, Signal]] = []
        for symbol in ctx.job.symbols:
            bars = ctx.bars.get(symbol, ())
            if len(bars) <= p.warmup:
                continue
            last = bars[-1]
            value = rsi_last([b.close for b in bars], p.rsi_period)
            if value is None:
                continue
            if ctx.held(symbol) > 0:
                if value >= p.rsi_overbought:
                    exits.append(
                        Signal(
                            symbol=symbol,
                            action=Action.EXIT,
                            bar_time=last.time,
                            price=last.close,
                            reason=f"RSI {value:.1f} >= {p.rsi_overbought:g}",
                        )
                    )
                continue
            if ctx.held(symbol) < 0 or value > p.rsi_oversold:
                continue
            ratio = volume_ratio([b.volume for b in bars], p.volume_period)
            if ratio is None or ratio < p.volume_multiplier:
                continue
            reason = f"RSI {value:.1f} <= {p.rsi_oversold:g}, volume x{ratio:.2f}"
            signal = ctx.entry(symbol, Action.BUY, last, reason)
            if signal is not None:
                candidates.append((value, signal))
        # Most oversold first, up to the free position slots.
        candidates.sort(key=lambda c: (c[0], c[1].symbol))
        slots = len(candidates)
        if ctx.job.risk.max_positions is not None:
            slots = max(0, ctx.job.risk.max_positions - ctx.open_positions())
        return exits + [s for _, s in candidates[:slots]]
