"""Our fills as TradingView UDF chart marks (green buys, red sells), from the fill index."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from app.execution.store import ExecutionStore


class FillMarks:
    def __init__(self, redis: Redis) -> None:
        self.store = ExecutionStore(redis)

    async def marks(self, symbol: str, start: int, end: int) -> list[dict[str, Any]]:
        """Every account's fills in ``[start, end)``, labelled with the account."""
        rows = []
        for fill in await self.store.fills_between(symbol, start, end):
            buy = fill.side.sign > 0
            rows.append(
                {
                    "id": fill.id,
                    "time": int(fill.time),
                    "color": "green" if buy else "red",
                    "text": f"{fill.intent.value} {fill.quantity} @ {fill.price:.2f} "
                    f"({fill.strategy}, {fill.account})",
                    "label": "B" if buy else "S",
                    "labelFontColor": "white",
                    "minSize": 14,
                }
            )
        return rows
