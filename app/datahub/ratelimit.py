"""Per-source token buckets for the webhook: a flood from one address cannot starve the rest."""

from __future__ import annotations

import time
from collections.abc import Callable


class SourceRateLimiter:
    """``rate`` requests per second per source with bursts up to ``burst``; O(1), in memory."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_sources: int = 10_000,
    ) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.clock = clock
        self.max_sources = max_sources
        self.buckets: dict[str, tuple[float, float]] = {}  # source -> (tokens, last refill)

    def allow(self, source: str) -> float:
        """0.0 if allowed now, else the seconds until a token is available (Retry-After)."""
        now = self.clock()
        tokens, last = self.buckets.get(source, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            if len(self.buckets) >= self.max_sources and source not in self.buckets:
                self.buckets.clear()  # bounded memory; a reset only ever lets more through
            self.buckets[source] = (tokens - 1.0, now)
            return 0.0
        self.buckets[source] = (tokens, now)
        return (1.0 - tokens) / self.rate
