"""Circuit breaker: stop adding risk when the broker keeps failing or money leaves fast.

CLOSED -> OPEN on too many broker errors (count or ratio in a sliding window) or on
loss velocity (equity falls ``max_loss`` dollars below its peak within
``loss_window_seconds``). After ``cooldown_seconds`` it is HALF_OPEN: a few probe
orders go through; the next broker success closes it, a failure re-opens it.
Transitions are evaluated lazily from timestamps, so no timer task is needed.
"""

from __future__ import annotations

from collections import deque
from enum import StrEnum

from app.observability.metrics import CIRCUIT_BREAKER
from app.risk.limits import CircuitBreakerLimits


class BreakerState(StrEnum):
    CLOSED = "CLOSED"
    OPEN = "OPEN"
    HALF_OPEN = "HALF_OPEN"


class CircuitBreaker:
    __slots__ = (
        "_calls",
        "_cfg",
        "_equity",
        "_errors",
        "half_open_probes",
        "open_until",
        "opened_at",
        "state",
        "trip_detail",
        "trip_reason",
        "trips",
    )

    def __init__(self, cfg: CircuitBreakerLimits) -> None:
        self._cfg = cfg
        self.state = BreakerState.CLOSED
        self.opened_at: float | None = None
        self.open_until = 0.0
        self.trip_reason: str | None = None
        self.trip_detail: dict[str, float] = {}
        self.trips = 0
        self.half_open_probes = 0
        self._calls: deque[tuple[float, bool]] = deque()
        self._errors = 0
        # Monotonically decreasing equity samples: the front is the window's peak.
        self._equity: deque[tuple[float, float]] = deque()
        CIRCUIT_BREAKER.set(0)

    # -- hot path -----------------------------------------------------------------
    def blocked(self, now: float) -> str | None:
        """Denial reason, or None when an order may pass. Counts no probe (see submitted)."""
        state = self.state
        if state is BreakerState.CLOSED:
            return None
        if state is BreakerState.OPEN:
            if now < self.open_until:
                return "open"
            self.state = BreakerState.HALF_OPEN
            self.half_open_probes = 0
        if self.half_open_probes >= self._cfg.half_open_max_orders:
            return "half_open_probe_pending"
        return None

    # -- state updates --------------------------------------------------------------
    def order_submitted(self, now: float) -> None:
        if self.state is BreakerState.HALF_OPEN or (
            self.state is BreakerState.OPEN and now >= self.open_until
        ):
            self.state = BreakerState.HALF_OPEN
            self.half_open_probes += 1

    def broker_result(self, ok: bool, now: float) -> None:
        cfg = self._cfg
        if self.state is not BreakerState.CLOSED:
            if self.state is BreakerState.OPEN and now < self.open_until:
                return  # stragglers from before the trip say nothing new
            if ok:
                self._close()
            else:
                self._trip("broker_errors", now, {"half_open_failure": 1.0})
            return
        calls = self._calls
        calls.append((now, ok))
        if not ok:
            self._errors += 1
        horizon = now - cfg.error_window_seconds
        while calls and calls[0][0] < horizon:
            if not calls.popleft()[1]:
                self._errors -= 1
        if ok:
            return
        errors, total = self._errors, len(calls)
        if cfg.max_errors is not None and errors >= cfg.max_errors:
            self._trip(
                "broker_errors", now, {"errors": errors, "window_s": cfg.error_window_seconds}
            )
        elif (
            cfg.max_error_ratio is not None
            and total >= cfg.min_calls
            and errors / total >= cfg.max_error_ratio
        ):
            self._trip("broker_error_ratio", now, {"errors": errors, "calls": total})

    def equity(self, equity: float, now: float) -> None:
        """Feed a mark-to-market equity sample (after quotes and fills)."""
        cfg = self._cfg
        if cfg.max_loss is None or (self.state is BreakerState.OPEN and now < self.open_until):
            return
        samples = self._equity
        while samples and samples[-1][1] <= equity:
            samples.pop()
        samples.append((now, equity))
        horizon = now - cfg.loss_window_seconds
        while samples[0][0] < horizon:
            samples.popleft()
        drop = samples[0][1] - equity
        if drop >= cfg.max_loss:
            self._trip("loss_velocity", now, {"loss": drop, "window_s": cfg.loss_window_seconds})

    def rebase_equity(self, equity: float, now: float) -> None:
        """A snapshot (deposit, reconciliation) is not a market loss: restart the window."""
        self._equity.clear()
        self._equity.append((now, equity))

    def reset(self) -> None:
        """Operator override: close now."""
        self._close()

    # -- internals ----------------------------------------------------------------
    def _trip(self, reason: str, now: float, detail: dict[str, float]) -> None:
        self.state = BreakerState.OPEN
        self.opened_at = now
        self.open_until = now + self._cfg.cooldown_seconds
        self.trip_reason = reason
        self.trip_detail = detail
        self.trips += 1
        self.half_open_probes = 0
        self._calls.clear()
        self._errors = 0
        self._equity.clear()
        CIRCUIT_BREAKER.set(1)

    def _close(self) -> None:
        self.state = BreakerState.CLOSED
        self.half_open_probes = 0
        self._calls.clear()
        self._errors = 0
        self._equity.clear()
        CIRCUIT_BREAKER.set(0)

    def snapshot(self, now: float) -> dict[str, object]:
        state = self.state
        if state is BreakerState.OPEN and now >= self.open_until:
            state = BreakerState.HALF_OPEN
        return {
            "state": state.value,
            "trip_reason": self.trip_reason,
            "trip_detail": dict(self.trip_detail),
            "opened_at": self.opened_at,
            "reopens_at": self.open_until if state is BreakerState.OPEN else None,
            "trips": self.trips,
            "errors_in_window": self._errors,
            "calls_in_window": len(self._calls),
            "loss_in_window": (self._equity[0][1] - self._equity[-1][1]) if self._equity else 0.0,
        }
