from __future__ import annotations

from app.datahub.ratelimit import SourceRateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_steady_rate_per_source() -> None:
    clock = Clock()
    limiter = SourceRateLimiter(rate=2.0, burst=3, clock=clock)
    assert [limiter.allow("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.allow("a")
    assert wait == 0.5  # one token at 2/s
    assert limiter.allow("b") == 0.0  # another source has its own bucket
    clock.now += 0.5
    assert limiter.allow("a") == 0.0
    assert limiter.allow("a") > 0
