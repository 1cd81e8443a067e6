"""Risk limits for tests that exercise something other than the risk checks."""

from __future__ import annotations

# the checks that would refuse a test's own traffic switched off (rate, duplicates,
# price collar, volatility); everything else as the defaults have it
PERMISSIVE = {"rate_limit": None, "duplicate": None, "price_collar": None, "volatility": None}
PERMISSIVE_YAML = "".join(f"{name}: null\n" for name in PERMISSIVE)
