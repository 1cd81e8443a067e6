"""Loading the risk/sizing file (``TRADEROPS_RISK_CONFIG``): limits plus a ``sizing:`` section."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from app.execution.sizing import SizingConfig
from app.risk.limits import RiskConfigError, RiskLimits, parse_limits


def load_execution_config(path: Path | None) -> tuple[RiskLimits, SizingConfig]:
    if path is None:
        return RiskLimits(), SizingConfig()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise RiskConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise RiskConfigError(f"{path}: invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise RiskConfigError(f"{path}: expected a mapping at the top level")
    sizing_raw = data.pop("sizing", None) or {}
    try:
        sizing = SizingConfig.model_validate(sizing_raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise RiskConfigError(f"{path}: sizing.{field}: {first['msg']}") from None
    return parse_limits(data, str(path)), sizing
