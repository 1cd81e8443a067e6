"""Risk limits: one pydantic model per check, loaded from YAML on top of defaults.

Validation happens once, at load time, so that the hot path can read plain attributes
and trust them. Every check can be disabled with ``null`` or ``enabled: false``; a
handful of order-level checks may be overridden per strategy (field by field).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from app.risk.killswitch import KillState

_TIME_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class RiskConfigError(ValueError):
    """A limits file that cannot be used; the message names the file and the field."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True


# -- system ---------------------------------------------------------------------------
class KillSwitchLimits(BaseModel):
    """The kill switch cannot be disabled; only its state at start-up is configurable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    initial_state: KillState = KillState.ACTIVE


class CircuitBreakerLimits(_Section):
    error_window_seconds: float = Field(60.0, gt=0)
    max_errors: int | None = Field(5, ge=1, description="trip on this many errors in the window")
    max_error_ratio: float | None = Field(0.5, gt=0, le=1)
    min_calls: int = Field(10, ge=1, description="calls in the window before the ratio counts")
    max_loss: float | None = Field(500.0, gt=0, description="loss velocity: dollars lost ...")
    loss_window_seconds: float = Field(300.0, gt=0, description="... within this many seconds")
    cooldown_seconds: float = Field(60.0, gt=0)
    half_open_max_orders: int = Field(1, ge=1)
    block_reducing: bool = False


class MarketHoursLimits(_Section):
    mode: Literal["exchange", "always"] | None = Field(
        None, description="None: TRADEROPS_MARKET_HOURS (settings.effective_market_hours)"
    )
    calendar: str = "XNYS"
    years_ahead: int = Field(3, ge=1, le=20)


class RateWindow(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_orders: int = Field(ge=1)
    window_seconds: float = Field(gt=0)


class RateLimits(_Section):
    global_: RateWindow | None = Field(
        default_factory=lambda: RateWindow(max_orders=60, window_seconds=60.0), alias="global"
    )
    per_symbol: RateWindow | None = Field(
        default_factory=lambda: RateWindow(max_orders=10, window_seconds=60.0)
    )

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# -- account --------------------------------------------------------------------------
class BuyingPowerLimits(_Section):
    pass


class DailyLossLimits(_Section):
    max_loss: float = Field(1000.0, gt=0, description="dollars, realised + unrealised")
    # no longer used: the day rolls with the calendar's trading day (app/sessions.py);
    # still accepted so older files load (a warning says so)
    reset_time: str = Field("09:30", description="ignored: the calendar's trading day rules")
    timezone: str = Field("America/New_York", description="ignored (see reset_time)")

    @field_validator("reset_time")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        if not _TIME_RE.match(value):
            raise ValueError("must be HH:MM (24 h)")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value


class MinBalanceLimits(_Section):
    min_equity: float | None = Field(2000.0, ge=0)
    min_cash: float | None = Field(None, description="cash after the order; may be negative")


class LeverageLimits(_Section):
    max_leverage: float = Field(2.0, gt=0, description="gross exposure after the order / equity")


# -- portfolio ------------------------------------------------------------------------
class OpenPositionsLimits(_Section):
    max_positions: int = Field(10, ge=1)


class ConcentrationLimits(_Section):
    max_pct: float = Field(25.0, gt=0, description="position notional / equity, percent")


class SectorLimits(_Section):
    max_pct: float = Field(50.0, gt=0, description="sector gross / equity, percent")
    sectors: dict[str, str] = Field(default_factory=dict, description="symbol -> sector")
    default_sector: str = "Other"

    @field_validator("sectors")
    @classmethod
    def _upper(cls, value: dict[str, str]) -> dict[str, str]:
        return {k.strip().upper(): v for k, v in value.items()}


# -- order / strategy -----------------------------------------------------------------
class PositionSizeLimits(_Section):
    max_shares: int | None = Field(1000, ge=1)
    max_notional: float | None = Field(25_000.0, gt=0)


class OrderNotionalLimits(_Section):
    max_notional: float = Field(10_000.0, gt=0)


class PriceCollarLimits(_Section):
    max_deviation_pct: float = Field(5.0, gt=0, description="limit/stop vs last quote, percent")
    require_quote: bool = False
    max_quote_age_seconds: float | None = Field(None, gt=0)


class QuantityLimits(_Section):
    min_quantity: int = Field(1, ge=1)
    max_quantity: int | None = Field(1000, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> QuantityLimits:
        if self.max_quantity is not None and self.min_quantity > self.max_quantity:
            raise ValueError("min_quantity must not exceed max_quantity")
        return self


class VolatilityLimits(_Section):
    max_annualized_pct: float = Field(200.0, gt=0)
    window: int = Field(60, ge=2, description="quotes (returns) in the rolling window")
    min_samples: int = Field(20, ge=2)
    max_gap_seconds: float = Field(300.0, gt=0, description="returns across gaps are ignored")

    @model_validator(mode="after")
    def _samples(self) -> VolatilityLimits:
        if self.min_samples > self.window:
            raise ValueError("min_samples must not exceed window")
        return self


class DuplicateLimits(_Section):
    window_seconds: float = Field(5.0, gt=0)


class OptionLimits(_Section):
    """Option orders (``app/risk/checks/options.py``): on by default with safe settings."""

    naked_calls: bool = Field(False, description="allow calls sold without shares or a long call")
    short_puts: Literal["cash_secured", "margin"] = "cash_secured"
    max_contracts_per_order: int | None = Field(100, ge=1)
    max_premium_per_order: float | None = Field(None, gt=0, description="dollars")
    max_loss_per_position: float | None = Field(None, gt=0, description="dollars, worst case")
    min_dte: int = Field(1, ge=0, description="0 allows same-day expiries (0DTE)")
    max_dte: int | None = Field(None, ge=0)
    max_spread_pct: float | None = Field(
        50.0, gt=0, description="a leg's bid/ask width as % of its mid"
    )
    max_delta_per_underlying: float | None = Field(None, gt=0, description="share-equivalents")
    max_delta: float | None = Field(None, gt=0, description="account, share-equivalents")


class StrategyOverrides(BaseModel):
    """Per-strategy patches; fields left out inherit the top-level section.

    Kept as raw mappings and validated after merging, so a patch is checked together
    with the values it inherits (e.g. ``min_quantity`` against the inherited maximum).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    position_size: dict[str, Any] | None = None
    order_notional: dict[str, Any] | None = None
    quantity: dict[str, Any] | None = None


OVERRIDABLE = ("position_size", "order_notional", "quantity")


class RiskLimits(BaseModel):
    """Every limit the engine enforces. A section set to ``None`` is disabled."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kill_switch: KillSwitchLimits = Field(default_factory=KillSwitchLimits)
    circuit_breaker: CircuitBreakerLimits | None = Field(default_factory=CircuitBreakerLimits)
    market_hours: MarketHoursLimits | None = Field(default_factory=MarketHoursLimits)
    rate_limit: RateLimits | None = Field(default_factory=RateLimits)
    buying_power: BuyingPowerLimits | None = Field(default_factory=BuyingPowerLimits)
    daily_loss: DailyLossLimits | None = Field(default_factory=DailyLossLimits)
    min_balance: MinBalanceLimits | None = Field(default_factory=MinBalanceLimits)
    leverage: LeverageLimits | None = Field(default_factory=LeverageLimits)
    max_open_positions: OpenPositionsLimits | None = Field(default_factory=OpenPositionsLimits)
    concentration: ConcentrationLimits | None = Field(default_factory=ConcentrationLimits)
    sector_concentration: SectorLimits | None = Field(default_factory=SectorLimits)
    position_size: PositionSizeLimits | None = Field(default_factory=PositionSizeLimits)
    order_notional: OrderNotionalLimits | None = Field(default_factory=OrderNotionalLimits)
    price_collar: PriceCollarLimits | None = Field(default_factory=PriceCollarLimits)
    quantity: QuantityLimits | None = Field(default_factory=QuantityLimits)
    volatility: VolatilityLimits | None = Field(default_factory=VolatilityLimits)
    duplicate: DuplicateLimits | None = Field(default_factory=DuplicateLimits)
    options: OptionLimits | None = Field(default_factory=OptionLimits)
    strategies: dict[str, StrategyOverrides] = Field(default_factory=dict)

    _resolved: dict[tuple[str, str], Any] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _merge_strategies(self) -> RiskLimits:
        for strategy, override in self.strategies.items():
            for name in OVERRIDABLE:
                if name not in override.model_fields_set:
                    continue
                patch = getattr(override, name)
                base = getattr(self, name)
                model = type(getattr(RiskLimits(), name)) if base is None else type(base)
                if patch is None:
                    self._resolved[(strategy, name)] = None
                    continue
                merged = (base.model_dump(by_alias=True) if base is not None else {}) | patch
                try:
                    self._resolved[(strategy, name)] = _enabled(model.model_validate(merged))
                except ValidationError as exc:
                    raise ValueError(
                        _format(exc, f"strategies.{strategy}.{name}", sep=".")
                    ) from None
        return self

    def section(self, name: str, strategy: str | None = None) -> Any:
        """The effective section for ``strategy`` (``None`` when disabled)."""
        if strategy is not None and (strategy, name) in self._resolved:
            return self._resolved[(strategy, name)]
        return _enabled(getattr(self, name))

    def overridden(self, name: str) -> dict[str, Any]:
        """Strategies that override section ``name``, with their effective section."""
        return {s: v for (s, n), v in self._resolved.items() if n == name}


def _enabled(section: Any) -> Any:
    if section is None or not getattr(section, "enabled", True):
        return None
    return section


def _format(exc: ValidationError, source: str, sep: str = ": ") -> str:
    lines = []
    for error in exc.errors():
        loc = ".".join(str(p) for p in error["loc"])
        msg = str(error["msg"]).removeprefix("Value error, ")
        if not loc:  # a model-level error: a section's own validator, or a located merge
            located = sep == "." or msg.startswith("strategies.")
            lines.append(f"{source}: {msg}" if located else f"{source}: (top level): {msg}")
            continue
        if error["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling)"
        elif "input" in error and not isinstance(error["input"], dict | list):
            msg = f"{msg} (got {error['input']!r})"
        lines.append(f"{source}{sep}{loc}: {msg}")
    return "\n".join(lines)


def parse_limits(data: Any, source: str = "<risk limits>") -> RiskLimits:
    """Validate a mapping (already parsed YAML); errors name ``source`` and the field."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RiskConfigError(f"{source}: expected a mapping at the top level")
    try:
        return RiskLimits.model_validate(data)
    except ValidationError as exc:
        raise RiskConfigError(_format(exc, source)) from None


def load_limits(path: str | Path | None) -> RiskLimits:
    """Read a limits file (``TRADEROPS_RISK_CONFIG``); ``None`` means defaults only."""
    if path is None:
        return RiskLimits()
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RiskConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise RiskConfigError(f"{path}: invalid YAML{where}: {problem}") from None
    return parse_limits(data, str(path))
