"""Clocks the scheduler sleeps on: the wall clock, or one tests move by hand."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Current time, UTC-aware."""

    async def sleep_until(self, when: datetime) -> None:
        """Return at or after ``when``."""


class SystemClock:
    """Wall clock. Sleeps in slices so a suspended host or a clock step is noticed."""

    max_slice = 30.0

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, when: datetime) -> None:
        while (delay := (when - self.now()).total_seconds()) > 0:  # noqa: ASYNC110 - re-check the wall clock
            await asyncio.sleep(min(delay, self.max_slice))


class ManualClock:
    """A clock that only moves when told to: deterministic scheduler tests."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._waiters: list[tuple[datetime, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> datetime:
        return self._now

    async def sleep_until(self, when: datetime) -> None:
        if when <= self._now:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (when, next(self._seq), fut))
        await fut

    @property
    def next_wakeup(self) -> datetime | None:
        live = [w for w in self._waiters if not w[2].done()]
        return min(live)[0] if live else None

    async def advance_to(self, when: datetime) -> None:
        """Move to ``when``, waking every sleeper due by then, then let them run a little."""
        self._now = max(self._now, when)
        while self._waiters and self._waiters[0][0] <= self._now:
            _, _, fut = heapq.heappop(self._waiters)
            if not fut.done():
                fut.set_result(None)
        for _ in range(5):
            await asyncio.sleep(0)

    async def advance(self, delta: timedelta) -> None:
        await self.advance_to(self._now + delta)
