"""Loading the risk/sizing file (``TRADEROPS_RISK_CONFIG``): limits plus a ``sizing:`` section."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from app.execution.sizing import SizingConfig
from app.risk.limits import RiskConfigError, RiskLimits, parse_limits


def read_yaml_mapping(path: Path, error: type[ValueError]) -> dict[str, Any]:
    """A YAML file whose top level is a mapping; ``error`` with one line naming the file."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:  # one line: where, and what (PyYAML's text spans lines)
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise error(f"{path}: invalid YAML{where}: {problem}") from None
    if not isinstance(data, dict):
        raise error(f"{path}: expected a mapping at the top level")
    return data


def load_execution_config(path: Path | None) -> tuple[RiskLimits, SizingConfig]:
    if path is None:
        return RiskLimits(), SizingConfig()
    data = read_yaml_mapping(path, RiskConfigError)
    sizing_raw = data.pop("sizing", None) or {}
    try:
        sizing = SizingConfig.model_validate(sizing_raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise RiskConfigError(f"{path}: sizing.{field}: {first['msg']}") from None
    return parse_limits(data, str(path)), sizing
