"""Strategy registry: the built-ins by name, anything else as a ``module:callable`` entry point.

An entry point may name
* a function ``(ctx: StrategyContext) -> list[Signal]``; its data needs come from the job's
  ``parameters``: ``resolution`` (default "5"), ``bars`` (100), ``quotes`` and ``positions``
  (false);
* an object with ``needs()`` and ``evaluate(ctx)`` (see ``base.Strategy``);
* a class with those methods, constructed with the job's ``parameters`` dict.
It is imported when the job is loaded, so ``kairos validate`` catches a typo.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from app.kairos.models import Signal
from app.kairos.strategies.base import (
    DataNeeds,
    Strategy,
    StrategyContext,
    StrategyFunction,
)
from app.kairos.strategies.mean_reversion import MeanReversion, MeanReversionParams
from app.kairos.strategies.momentum import Momentum, MomentumParams
from app.kairos.strategies.rebalance import Rebalance, RebalanceParams
from app.models.market import Resolution

if TYPE_CHECKING:
    from app.kairos.jobs import JobSpec

__all__ = [
    "BUILTINS",
    "DataNeeds",
    "FunctionStrategy",
    "MeanReversion",
    "Momentum",
    "Rebalance",
    "Strategy",
    "StrategyContext",
    "build_strategy",
]


def _momentum(spec: JobSpec) -> Strategy:
    return Momentum(MomentumParams.model_validate(spec.parameters))


def _mean_reversion(spec: JobSpec) -> Strategy:
    return MeanReversion(MeanReversionParams.model_validate(spec.parameters))


def _rebalance(spec: JobSpec) -> Strategy:
    strategy = Rebalance(RebalanceParams.model_validate(spec.parameters))
    strategy.check_symbols(spec.symbols)
    return strategy


BUILTINS: dict[str, Callable[[JobSpec], Strategy]] = {
    "momentum": _momentum,
    "mean_reversion": _mean_reversion,
    "rebalance": _rebalance,
}


class FunctionParams(BaseModel):
    """The parameters a plain-function strategy uses to say what data it wants."""

    model_config = ConfigDict(extra="allow", frozen=True)

    resolution: Resolution = Resolution.M5
    bars: int = Field(100, ge=0, le=5000)
    quotes: bool = False
    positions: bool = False


class FunctionStrategy:
    """Adapts ``(ctx) -> list[Signal]`` to the Strategy protocol."""

    def __init__(self, name: str, func: StrategyFunction, params: FunctionParams) -> None:
        self.name = name
        self.func = func
        self.params = params

    def needs(self) -> DataNeeds:
        p = self.params
        return DataNeeds(
            resolution=p.resolution if p.bars else None,
            bars=p.bars,
            quotes=p.quotes,
            positions=p.positions,
        )

    def evaluate(self, ctx: StrategyContext) -> list[Signal]:
        return list(self.func(ctx))


def _import(ref: str) -> Any:
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise ValueError(
            f"{ref!r} is neither a built-in ({', '.join(BUILTINS)}) nor a 'module:callable' entry point"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import module {module_name!r}: {exc}") from None
    target: Any = module
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ValueError(f"module {module_name!r} has no attribute {attr!r}") from None
    return target


def build_strategy(spec: JobSpec) -> Strategy:
    """The strategy object for a job; raises ValueError or pydantic's ValidationError."""
    factory = BUILTINS.get(spec.strategy)
    if factory is not None:
        return factory(spec)
    target = _import(spec.strategy)
    if isinstance(target, type) and hasattr(target, "evaluate"):
        instance = target(spec.parameters)
        if not isinstance(instance, Strategy):
            raise ValueError(f"{spec.strategy!r} does not implement needs() and evaluate(ctx)")
        return instance
    if isinstance(target, Strategy):
        return target
    if callable(target):
        return FunctionStrategy(
            spec.strategy, target, FunctionParams.model_validate(spec.parameters)
        )
    raise ValueError(f"{spec.strategy!r} is not callable")
