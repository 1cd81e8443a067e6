"""Mean reversion: buy a close below the lower Bollinger band while RSI is oversold; exit
once price is back at the mean (or RSI overbought).

Requiring both filters avoids buying a band break in a trending market, where the band
walks down with price; the exit takes the reversion the strategy is betting on.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from app.kairos.indicators import bollinger, rsi_last
from app.kairos.models import Action, Signal
from app.kairos.strategies.base import BarStrategy, RsiParams, StrategyContext
from app.models.market import Resolution


class MeanReversionParams(RsiParams):
    lookback_field = "bb_period"

    resolution: Resolution = Resolution.M15
    bb_period: int = Field(20, ge=2, le=500)
    bb_std: float = Field(2.0, gt=0, le=5)
    exit_at: Literal["middle", "upper"] = "middle"
    allow_short: bool = False


class MeanReversion(BarStrategy[MeanReversionParams]):
    name = "mean_reversion"
    Params = MeanReversionParams

    def evaluate(self, ctx: StrategyContext) -> list[Signal]:
        p = self.params
        exits: list[Signal] = []
        entries: list[tuple[float, Signal]] = []
        for symbol in ctx.job.symbols:
            bars = ctx.bars.get(symbol, ())
            if len(bars) <= p.warmup:
                continue
            closes = [b.close for b in bars]
            last = bars[-1]
            band = bollinger(closes, p.bb_period, p.bb_std)[-1]
            value = rsi_last(closes, p.rsi_period)
            if band is None or value is None:
                continue
            price, held = last.close, ctx.held(symbol)
            exit_level = band.middle if p.exit_at == "middle" else band.upper
            short_exit = band.middle if p.exit_at == "middle" else band.lower

            why = f"close {price:.2f}, RSI {value:.1f}"
            if held > 0:
                if price >= exit_level or value >= p.rsi_overbought:
                    exits.append(
                        _exit(
                            symbol, last.time, price, f"{why}: exit rule ({p.exit_at} band or RSI)"
                        )
                    )
            elif held < 0:
                if price <= short_exit or value <= p.rsi_oversold:
                    exits.append(
                        _exit(
                            symbol, last.time, price, f"{why}: exit rule ({p.exit_at} band or RSI)"
                        )
                    )
            elif price < band.lower and value <= p.rsi_oversold:
                why = f"close {price:.2f} < lower {band.lower:.2f}, RSI {value:.1f}"
                sig = ctx.entry(symbol, Action.BUY, last, why)
                if sig is not None:
                    entries.append((value - p.rsi_oversold, sig))
            elif p.allow_short and price > band.upper and value >= p.rsi_overbought:
                why = f"close {price:.2f} > upper {band.upper:.2f}, RSI {value:.1f}"
                sig = ctx.entry(symbol, Action.SELL, last, why)
                if sig is not None:
                    entries.append((p.rsi_overbought - value, sig))
        entries.sort(key=lambda e: (e[0], e[1].symbol))  # the most extreme first
        slots = len(entries)
        if ctx.job.risk.max_positions is not None:
            slots = max(0, ctx.job.risk.max_positions - ctx.open_positions())
        return exits + [s for _, s in entries[:slots]]


def _exit(symbol: str, bar_time: int, price: float, reason: str) -> Signal:
    return Signal(symbol=symbol, action=Action.EXIT, bar_time=bar_time, price=price, reason=reason)
