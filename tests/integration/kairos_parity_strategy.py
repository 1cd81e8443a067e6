"""A deterministic strategy for the live/backtest parity test: buy 2 shares when the last
completed bar closed up, exit the position when it closed down (never looks at the clock)."""

from __future__ import annotations

from app.kairos.models import Action, Signal
from app.kairos.strategies.base import StrategyContext


def up_buys_down_exits(ctx: StrategyContext) -> list[Signal]:
    signals = []
    for symbol in ctx.job.symbols:
        bars = ctx.bars.get(symbol) or []
        if len(bars) < 2:
            continue
        last, prev = bars[-1], bars[-2]
        held = ctx.positions.get(symbol)
        if last.close > prev.close:
            signals.append(
                Signal(
                    symbol=symbol, action=Action.BUY, bar_time=last.time, quantity=2, reason="up"
                )
            )
        elif last.close < prev.close and held is not None and held.quantity:
            signals.append(
                Signal(symbol=symbol, action=Action.EXIT, bar_time=last.time, reason="down")
            )
    return signals
