"""A strategy for the end-to-end test: buy 2 shares of every symbol on the last completed bar."""

from __future__ import annotations

from app.kairos.models import Action, Signal
from app.kairos.strategies.base import StrategyContext


def buy_last_bar(ctx: StrategyContext) -> list[Signal]:
    signals = []
    for symbol in ctx.job.symbols:
        bars = ctx.bars.get(symbol) or []
        if bars:
            signals.append(
                Signal(
                    symbol=symbol,
                    action=Action.BUY,
                    bar_time=bars[-1].time,
                    quantity=2,
                    reason="e2e",
                )
            )
    return signals
