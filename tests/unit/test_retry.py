"""The one retry policy: the waits it computes, and what stamina does with it.

No assertion reads a clock: waits are read from the policy, with the randomness
injected, or from stamina's retry hook (the wait it is about to sleep).
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
import stamina
from stamina.instrumentation import RetryDetails, set_on_retry_hooks

from app.retry import REDIS_RECONNECT, RetryPolicy

NO_JITTER = RetryPolicy(wait_initial=0.1, wait_max=5.0, wait_jitter=0.0)


class Pinned(random.Random):
    """``uniform`` always answers the low or the high end: the jitter's bounds."""

    def __init__(self, high: bool) -> None:
        super().__init__(0)
        self.high = high

    def uniform(self, a: float, b: float) -> float:
        return b if self.high else a


class Transient(Exception):
    pass


class Final(Exception):
    pass


class SlowDown(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"retry after {retry_after}")
        self.retry_after = retry_after


@pytest.fixture
def slept() -> Iterator[list[float]]:
    """The waits stamina is about to sleep, in order (its on-retry hook)."""
    waits: list[float] = []

    def record(details: RetryDetails) -> None:
        waits.append(details.wait_for)

    set_on_retry_hooks([record])
    try:
        yield waits
    finally:
        set_on_retry_hooks(None)


# -- the waits ------------------------------------------------------------------------


def test_waits_double_from_the_initial_one_and_stop_at_the_cap() -> None:
    assert [NO_JITTER.backoff(n) for n in range(1, 9)] == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]


def test_a_very_long_outage_stays_at_the_cap() -> None:
    assert NO_JITTER.backoff(10_000) == 5.0


@pytest.mark.parametrize("failures", [1, 3, 6, 50])
def test_jitter_adds_up_to_wait_jitter_and_never_passes_the_cap(failures: int) -> None:
    policy = RetryPolicy(wait_initial=0.25, wait_max=5.0, wait_jitter=0.5)
    base = min(5.0, 0.25 * 2 ** (failures - 1))
    low = policy.backoff(failures, Pinned(high=False))
    high = policy.backoff(failures, Pinned(high=True))
    assert low == base
    assert high == min(5.0, base + 0.5)
    assert high <= policy.wait_max


def test_waits_are_jittered() -> None:
    policy = RetryPolicy(wait_initial=0.25, wait_max=5.0, wait_jitter=0.5)
    rng = random.Random(7)
    waits = {policy.backoff(2, rng) for _ in range(50)}
    assert len(waits) > 40
    assert all(0.5 <= w <= 1.0 for w in waits)


def test_a_loop_backoff_has_no_attempt_limit_and_resets_after_a_success() -> None:
    policy = RetryPolicy(attempts=1, total_timeout=0.001, wait_initial=0.1, wait_jitter=0.0)
    backoff = policy.waits()
    waits = [next(backoff) for _ in range(100)]
    assert backoff.failures == 100
    assert waits[:3] == [0.1, 0.2, 0.4] and waits[-1] == policy.wait_max
    backoff.reset()
    assert next(backoff) == 0.1


def test_redis_reconnect_keeps_the_old_listener_waits() -> None:
    backoff = REDIS_RECONNECT.waits()
    assert [next(backoff) for _ in range(8)] == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]


def test_stamina_testing_mode_does_not_zero_a_never_ending_loop() -> None:
    with stamina.set_testing(True):
        assert NO_JITTER.waits().__next__() == 0.1


@pytest.mark.parametrize(
    "bad",
    [{"attempts": 0}, {"wait_initial": -1.0}, {"wait_jitter": -0.1}, {"retry_after_max": -1.0}],
)
def test_nonsense_is_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**bad)  # type: ignore[arg-type]


# -- Retry-After ----------------------------------------------------------------------


def test_retry_after_is_honoured_and_capped() -> None:
    policy = RetryPolicy(retry_after_max=60.0)
    hook = policy.hook(lambda exc: exc.retry_after if isinstance(exc, SlowDown) else False)
    assert callable(hook) and not isinstance(hook, type | tuple)
    assert hook(SlowDown(2.5)) == 2.5
    assert hook(SlowDown(3600.0)) == 60.0
    assert hook(SlowDown(-5.0)) == 0.0
    assert hook(Final()) is False


def test_exception_classes_pass_through_to_stamina() -> None:
    assert RetryPolicy().hook(Transient) is Transient
    assert RetryPolicy().hook((Transient, OSError)) == (Transient, OSError)


# -- bounded retries through stamina -----------------------------------------------------

ATTEMPTS = 4
TINY = RetryPolicy(
    attempts=ATTEMPTS, total_timeout=30.0, wait_initial=0.0, wait_max=0.0, wait_jitter=0.0
)


async def call(policy: RetryPolicy, errors: list[Exception], on: object) -> tuple[int, str]:
    """Run one call under ``policy``; it raises ``errors`` in turn, then answers."""
    calls = 0
    async for attempt in policy.retrying(on):  # type: ignore[arg-type]
        with attempt:
            calls += 1
            if errors:
                raise errors.pop(0)
            return calls, "ok"
    raise AssertionError("unreachable")


async def test_a_transient_failure_is_retried_until_it_works(slept: list[float]) -> None:
    assert await call(TINY, [Transient(), Transient()], Transient) == (3, "ok")
    assert slept == [0.0, 0.0]


async def test_attempts_are_capped_and_the_last_error_is_raised(slept: list[float]) -> None:
    errors: list[Exception] = [Transient(str(n)) for n in range(10)]
    with pytest.raises(Transient, match=r"^3$"):
        await call(TINY, errors, Transient)
    assert len(errors) == 10 - ATTEMPTS
    assert len(slept) == ATTEMPTS - 1


async def test_a_non_retryable_error_is_raised_at_once(slept: list[float]) -> None:
    errors: list[Exception] = [Final("no"), Transient()]
    with pytest.raises(Final):
        await call(TINY, errors, lambda exc: isinstance(exc, Transient))
    assert errors and isinstance(errors[0], Transient)  # nothing tried after it
    assert slept == []


async def test_stamina_sleeps_the_retry_after_capped(slept: list[float]) -> None:
    policy = RetryPolicy(
        attempts=3, wait_initial=0.0, wait_max=0.0, wait_jitter=0.0, retry_after_max=0.02
    )
    on = lambda exc: exc.retry_after if isinstance(exc, SlowDown) else False  # noqa: E731
    # half a second, not an hour: were the cap broken, this fails instead of hanging
    assert await call(policy, [SlowDown(0.01), SlowDown(0.5)], on) == (3, "ok")
    assert slept == pytest.approx([0.01, 0.02])  # stamina reports sums of idle time


async def test_the_total_timeout_ends_an_unlimited_retry() -> None:
    policy = RetryPolicy(
        attempts=None, total_timeout=0.05, wait_initial=0.01, wait_max=0.01, wait_jitter=0.0
    )
    errors: list[Exception] = [Transient() for _ in range(10_000)]
    with pytest.raises(Transient):
        await call(policy, errors, Transient)
    assert 1 < 10_000 - len(errors) < 10_000
