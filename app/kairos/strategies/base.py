"""The strategy contract: declare the data you need, then decide from it without I/O.

Keeping ``evaluate`` pure means a strategy is tested on fixture bars alone, and the runner
owns every network call, retry and timeout.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar, Generic, Protocol, Self, TypeVar, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.kairos.models import Account, Action, Position, QuoteSnapshot, Signal
from app.models.market import Bar, Resolution

if TYPE_CHECKING:
    from app.kairos.jobs import JobSpec


@dataclass(frozen=True, slots=True)
class DataNeeds:
    """What the runner fetches before ``evaluate``: completed bars, quotes, the book."""

    resolution: Resolution | None = None
    bars: int = 0
    quotes: bool = False
    positions: bool = False


@dataclass(frozen=True)
class StrategyContext:
    """Everything a strategy may look at for one run.

    ``bars`` hold completed bars only (oldest first). ``positions`` and ``account`` are
    empty/None when the admin API is not configured: strategies then assume a flat book
    and leave sizing to the datahub.
    """

    job: JobSpec
    now: datetime
    bars: Mapping[str, Sequence[Bar]] = field(default_factory=dict)
    quotes: Mapping[str, QuoteSnapshot] = field(default_factory=dict)
    positions: Mapping[str, Position] = field(default_factory=dict)
    account: Account | None = None

    def held(self, symbol: str) -> float:
        pos = self.positions.get(symbol)
        return pos.quantity if pos is not None else 0.0

    def open_positions(self) -> int:
        """Open positions among this job's symbols (``max_positions`` counts these)."""
        return sum(1 for s in self.job.symbols if self.held(s) != 0)

    def size(self, price: float) -> int | None:
        """Whole shares for ``risk.position_size`` of equity; None when equity is unknown."""
        frac = self.job.risk.position_size
        if frac is None or self.account is None or price <= 0:
            return None
        return math.floor(self.account.equity * frac / price)

    def entry(self, symbol: str, action: Action, bar: Bar, reason: str) -> Signal | None:
        """An entry signal with the job's stop and target as prices; None if sized to zero."""
        qty = self.size(bar.close)
        if qty == 0:
            return None
        sign = 1 if action is Action.BUY else -1
        sl, tp = self.job.risk.stop_loss, self.job.risk.take_profit
        return Signal(
            symbol=symbol,
            action=action,
            bar_time=bar.time,
            quantity=qty,
            price=bar.close,
            stop_loss=round(bar.close * (1 - sign * sl), 2) if sl else None,
            take_profit=round(bar.close * (1 + sign * tp), 2) if tp else None,
            reason=reason,
        )


@runtime_checkable
class Strategy(Protocol):
    name: str

    def needs(self) -> DataNeeds: ...

    def evaluate(self, ctx: StrategyContext) -> list[Signal]: ...


StrategyFunction = Callable[[StrategyContext], list[Signal]]


class RsiParams(BaseModel):
    """Parameters of the strategies that read RSI over completed bars; a subclass names
    its other look-back in ``lookback_field`` (history must cover both)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    lookback_field: ClassVar[str]

    resolution: Resolution = Resolution.M5
    history_bars: int = Field(150, ge=30, le=5000, description="bars fetched (indicator warm-up)")
    rsi_period: int = Field(14, ge=2, le=200)
    rsi_oversold: float = Field(30, gt=0, lt=100)
    rsi_overbought: float = Field(70, gt=0, lt=100)

    @property
    def warmup(self) -> int:
        """Bars needed before the first value of every indicator."""
        return max(self.rsi_period, int(getattr(self, self.lookback_field)))

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.rsi_oversold >= self.rsi_overbought:
            raise ValueError("rsi_oversold must be below rsi_overbought")
        if self.history_bars <= self.warmup:
            raise ValueError(f"history_bars must exceed rsi_period and {self.lookback_field}")
        return self


P = TypeVar("P", bound=RsiParams)


class BarStrategy(Generic[P]):
    """A strategy over completed bars of one resolution and the current book."""

    def __init__(self, params: P) -> None:
        self.params = params

    def needs(self) -> DataNeeds:
        return DataNeeds(
            resolution=self.params.resolution, bars=self.params.history_bars, positions=True
        )
