from __future__ import annotations

import pytest

from app.execution.sizing import SizingError, SizingRule, size
from app.models.alerts import Alert


def alert(**kw: object) -> Alert:
    return Alert.model_validate({"ticker": "AAPL", "action": "buy", **kw})


def test_signal_uses_the_alert_quantity_then_the_default() -> None:
    assert size(SizingRule(), alert(quantity=7), 100, 10_000) == 7
    assert size(SizingRule(quantity=3), alert(), 100, 10_000) == 3
    with pytest.raises(SizingError, match="no quantity"):
        size(SizingRule(), alert(), 100, 10_000)


def test_fixed_percent_dollar_and_risk_modes() -> None:
    assert size(SizingRule(mode="fixed", quantity=5), alert(quantity=99), 100, 10_000) == 5
    assert size(SizingRule(mode="percent_equity", percent=5), alert(), 50, 100_000) == 100
    assert size(SizingRule(mode="dollar", dollars=1_000), alert(), 30, 0) == 33
    # risk 1% of 100k = $1000; stop $2 away -> 500 shares
    assert size(SizingRule(mode="risk", risk_percent=1), alert(stop_loss=98), 100, 100_000) == 500
    with pytest.raises(SizingError, match="stop_loss"):
        size(SizingRule(mode="risk", risk_percent=1), alert(), 100, 100_000)
