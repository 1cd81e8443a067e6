"""One retry policy for every call and loop that may fail for a while.

Why one: the Tradier client, kairos' datahub client, the journal worker, the quote
publisher and the Redis listeners each had their own doubling, cap and jitter. Now the
numbers live in a ``RetryPolicy`` and the waits come from one formula, stamina's:
``min(wait_max, wait_initial * 2 ** (failures - 1) + uniform(0, wait_jitter))``.

- A call that may give up (a REST request) runs under ``policy.retrying(on)``: stamina
  drives it with the policy's attempts and total timeout. The caller's ``on`` decides
  what is retryable, from its own error classes, as freqtrade's retrier does: ``False``
  raises at once; a number of seconds (a server's ``Retry-After``) is honoured, capped
  at ``retry_after_max``.
- A loop that never gives up (a stream reconnect, the journal worker, a subscription)
  takes ``policy.waits()``: the same waits without an attempt limit, reset when the
  loop works again.

``stamina.set_testing`` zeroes the waits of ``retrying`` (stamina's own); it does not
touch ``Backoff``, whose zero waits would spin a never-ending loop. Tests pass a policy
with tiny waits instead.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterable, Callable, Iterator
from dataclasses import dataclass

import stamina

# What a caller's ``on`` hook answers: retry or not, or wait this many seconds first.
Verdict = bool | float
RetryOn = type[Exception] | tuple[type[Exception], ...] | Callable[[Exception], Verdict]

# 2 ** 62 times any sane wait_initial is past every cap; stops float overflow.
_MAX_EXPONENT = 62


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounds for retries; every loop takes one, so tests can inject tiny waits.

    ``attempts`` and ``total_timeout`` (seconds across all attempts of one call) bound
    ``retrying``; ``None`` means no limit. ``Backoff`` ignores both: its loops never stop.
    """

    attempts: int | None = 4
    total_timeout: float | None = 20.0
    wait_initial: float = 0.25
    wait_max: float = 5.0
    wait_jitter: float = 0.5
    retry_after_max: float = 60.0  # the longest wait a server may ask for (Retry-After, quota)

    def __post_init__(self) -> None:
        if self.attempts is not None and self.attempts < 1:
            raise ValueError(f"attempts must be at least 1 (or None), not {self.attempts}")
        if min(self.wait_initial, self.wait_max, self.wait_jitter, self.retry_after_max) < 0:
            raise ValueError("retry waits cannot be negative")

    def backoff(self, failures: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after ``failures`` consecutive failures (stamina's formula,
        so a loop's waits match a call's)."""
        exponent = min(max(0, failures - 1), _MAX_EXPONENT)
        jitter = (rng or random).uniform(0, self.wait_jitter) if self.wait_jitter else 0.0
        return min(self.wait_max, self.wait_initial * 2.0**exponent + jitter)

    def retry_after(self, seconds: float) -> float:
        """A server-requested wait, never negative and never past ``retry_after_max``."""
        return min(max(seconds, 0.0), self.retry_after_max)

    def hook(self, on: RetryOn) -> RetryOn:
        """``on`` with its Retry-After answers capped (exception classes pass through)."""
        if isinstance(on, type | tuple):
            return on

        def verdict(exc: Exception) -> Verdict:
            answer = on(exc)
            if isinstance(answer, bool):
                return answer
            return self.retry_after(float(answer))

        return verdict

    def retrying(self, on: RetryOn) -> AsyncIterable[stamina.Attempt]:
        """Attempts of one call (``async for attempt in ...: with attempt: ...``); the
        last error is re-raised when attempts or time run out."""
        return stamina.retry_context(
            on=self.hook(on),
            attempts=self.attempts,
            timeout=self.total_timeout,
            wait_initial=self.wait_initial,
            wait_max=self.wait_max,
            wait_jitter=self.wait_jitter,
        )

    def waits(self, rng: random.Random | None = None) -> Backoff:
        """Waits for a loop that never gives up (reset it after a success)."""
        return Backoff(self, rng)


class Backoff(Iterator[float]):
    """The waits of a never-ending loop: capped and jittered, no attempt limit.

    ``next(backoff)`` counts a failure and answers the wait before trying again;
    ``reset()`` after the loop works again, so the next outage starts short.
    """

    def __init__(self, policy: RetryPolicy, rng: random.Random | None = None) -> None:
        self.policy = policy
        self.rng = rng
        self.failures = 0

    def __next__(self) -> float:
        self.failures += 1
        return self.policy.backoff(self.failures, self.rng)

    def reset(self) -> None:
        self.failures = 0


# Redis pub/sub listeners and lease loops: reconnect fast, then every 5 s, forever.
# No jitter, as before: Redis restarts are rare and every client should be back soon.
REDIS_RECONNECT = RetryPolicy(
    attempts=None, total_timeout=None, wait_initial=0.1, wait_max=5.0, wait_jitter=0.0
)


def raise_if_cancelling() -> None:
    """For a loop that catches ``OSError``/``RedisError`` and goes on: re-raise the
    cancellation such an error may stand for. On Python 3.11 a cancel that meets a timeout
    (``asyncio.timeout``, ``wait_for``) can surface as ``TimeoutError`` (an ``OSError``), and
    a loop that retried it would never stop; the task still says it is being cancelled."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
