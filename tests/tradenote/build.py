"""TradeNote's builder lives in deployment/tradenote/build.py (the playbook uses it too);
loaded here for the tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_PATH = Path(__file__).resolve().parents[2] / "deployment" / "tradenote" / "build.py"
_spec = importlib.util.spec_from_file_location("tradenote_build", _PATH)
assert _spec and _spec.loader
_mod = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _mod
_spec.loader.exec_module(_mod)

SourceMissing = _mod.SourceMissing
TESTED_VERSION: str = _mod.TESTED_VERSION
ensure_built = _mod.ensure_built
cache_root = _mod.cache_root
