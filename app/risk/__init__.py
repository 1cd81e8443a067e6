"""Pre-trade risk: layered checks over state held in-process (no I/O on the hot path)."""

from app.risk.breaker import BreakerState, CircuitBreaker
from app.risk.checks import RiskDecision
from app.risk.engine import RiskEngine
from app.risk.killswitch import KillState, KillSwitch
from app.risk.limits import RiskConfigError, RiskLimits, load_limits, parse_limits

__all__ = [
    "BreakerState",
    "CircuitBreaker",
    "KillState",
    "KillSwitch",
    "RiskConfigError",
    "RiskDecision",
    "RiskEngine",
    "RiskLimits",
    "load_limits",
    "parse_limits",
]
