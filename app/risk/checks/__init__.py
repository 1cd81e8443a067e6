"""The pre-trade checks, by layer (``base`` has the protocol, the verdict and their order)."""

from app.risk.checks.account import BuyingPowerCheck, DailyLossCheck, LeverageCheck, MinBalanceCheck
from app.risk.checks.base import ORDER, Check, Ctx, PerStrategyCheck, RiskDecision
from app.risk.checks.order import (
    DuplicateCheck,
    OrderNotionalCheck,
    PositionSizeCheck,
    PriceCollarCheck,
    QuantityCheck,
    VolatilityCheck,
)
from app.risk.checks.portfolio import (
    ConcentrationCheck,
    MaxOpenPositionsCheck,
    SectorConcentrationCheck,
)
from app.risk.checks.system import (
    CircuitBreakerCheck,
    KillSwitchCheck,
    MarketHoursCheck,
    RateLimitCheck,
    ReferencePriceCheck,
)

__all__ = [
    "ORDER",
    "BuyingPowerCheck",
    "Check",
    "CircuitBreakerCheck",
    "ConcentrationCheck",
    "Ctx",
    "DailyLossCheck",
    "DuplicateCheck",
    "KillSwitchCheck",
    "LeverageCheck",
    "MarketHoursCheck",
    "MaxOpenPositionsCheck",
    "MinBalanceCheck",
    "OrderNotionalCheck",
    "PerStrategyCheck",
    "PositionSizeCheck",
    "PriceCollarCheck",
    "QuantityCheck",
    "RateLimitCheck",
    "ReferencePriceCheck",
    "RiskDecision",
    "SectorConcentrationCheck",
    "VolatilityCheck",
]
