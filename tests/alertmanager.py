"""deployment/alertmanager's scripts (not part of the app package), loaded for the tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

AM_DIR = Path(__file__).resolve().parents[1] / "deployment" / "alertmanager"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"am_{name}", AM_DIR / f"{name}.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


gen = load("generate_time_intervals")
render = load("render")
