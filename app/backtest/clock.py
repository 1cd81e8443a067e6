"""The simulated clock every part of a backtest reads (the engine, risk, the paper broker,
the feed and kairos), moved by the run, never by the wall clock."""

from __future__ import annotations

from datetime import UTC, datetime


class SimClock:
    def __init__(self, start: float) -> None:
        self.t = start

    def time(self) -> float:
        """Epoch seconds (what the engine, risk, the broker and the feed call)."""
        return self.t

    def now(self) -> datetime:
        """Kairos's clock protocol."""
        return datetime.fromtimestamp(self.t, UTC)

    async def sleep_until(self, when: datetime) -> None:
        self.t = max(self.t, when.timestamp())

    def set(self, when: datetime | float) -> None:
        self.t = when.timestamp() if isinstance(when, datetime) else float(when)
