"""The datahub in-process on the session's real Redis, with every secret configured."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.config import Settings
from tests.apps import settings_for

PASS = "fuzz-passphrase"
HMAC_KEY = "fuzz-hmac-key"
ADMIN = "fuzz-admin-key"
SYMBOLS = ["AAPL", "MSFT", "SPY"]
RISK = """
rate_limit: null
duplicate: null
price_collar: null
volatility: null
"""


def fuzz_settings(redis_url: str, tmp: Path, **kw: Any) -> Settings:
    risk = tmp / "risk.yaml"
    risk.write_text(RISK)
    values: dict[str, Any] = {
        "symbols": SYMBOLS,
        "webhook_passphrase": PASS,
        "webhook_hmac_key": HMAC_KEY,
        "admin_api_key": ADMIN,
        "risk_config": risk,
        "market_hours": "always",
        "sim_quote_rate": 5,
        "data_dir": tmp,
    }
    # one source sends everything here: lift the per-source webhook limit if there is one
    for name, value in (("webhook_rate_per_source", 1e6), ("webhook_burst_per_source", 10**6)):
        if name in Settings.model_fields:
            values[name] = value
    values.update(kw)
    return settings_for(redis_url, **values)  # type: ignore[no-any-return]
