"""The operator's kill switch: the one control that overrides every other check."""

from __future__ import annotations

import time
from enum import StrEnum


class KillState(StrEnum):
    """ACTIVE trades normally; REDUCING only lets exposure shrink; HALTED denies all."""

    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"

    @property
    def level(self) -> int:
        """Gauge value (0, 1, 2): alerts fire on ``> 0``."""
        return _LEVEL[self]


_LEVEL = {KillState.ACTIVE: 0, KillState.REDUCING: 1, KillState.HALTED: 2}


class KillSwitch:
    """Holds the state plus who/why/when, so the API can show more than a flag."""

    __slots__ = ("changed_at", "reason", "state")

    def __init__(self, state: KillState = KillState.ACTIVE, now: float | None = None) -> None:
        self.state = state
        self.changed_at = time.time() if now is None else now
        self.reason: str | None = None

    def set(self, state: KillState | str, now: float, reason: str | None = None) -> KillState:
        """Switch state (accepts the API's strings, case-insensitive); returns the old one."""
        new = state if isinstance(state, KillState) else KillState(str(state).strip().upper())
        old = self.state
        self.state = new
        self.changed_at = now
        self.reason = reason
        return old

    def snapshot(self) -> dict[str, object]:
        return {"state": self.state.value, "changed_at": self.changed_at, "reason": self.reason}
