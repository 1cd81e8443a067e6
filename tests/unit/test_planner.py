"""The planner: an alert as a signed change, split against what the account holds."""

from __future__ import annotations

from app.execution.planner import plan
from app.execution.sizing import SizingRule
from app.models.alerts import Alert
from app.models.orders import Intent

RULE = SizingRule()


def legs(action: str, *, position: int, strategy_held: int | None, quantity: int = 5) -> list:
    alert = Alert(ticker="AAPL", action=action, quantity=quantity, strategy="s1")
    requests = plan(
        alert,
        "a1",
        account="default",
        position=position,
        pending=0,
        price=100.0,
        equity=100_000.0,
        rule=RULE,
        strategy_held=strategy_held,
    )
    return [(r.intent, r.quantity) for r in requests]


def test_exit_closes_the_strategys_part_not_the_accounts() -> None:
    assert legs("exit", position=13, strategy_held=3) == [(Intent.SELL, 3)]
    assert legs("exit", position=-13, strategy_held=-3) == [(Intent.BUY_TO_COVER, 3)]


def test_exit_never_opens_a_position_the_account_does_not_hold() -> None:
    assert legs("exit", position=2, strategy_held=5) == [(Intent.SELL, 2)]
    assert legs("exit", position=0, strategy_held=5) == []
    assert legs("exit", position=-4, strategy_held=5) == []  # another strategy's short


def test_flatten_closes_the_whole_account() -> None:
    assert legs("flatten", position=13, strategy_held=3) == [(Intent.SELL, 13)]


def test_a_sell_beyond_the_long_closes_then_shorts_by_the_accounts_position() -> None:
    assert legs("sell", position=3, strategy_held=0, quantity=5) == [
        (Intent.SELL, 3),
        (Intent.SELL_SHORT, 2),
    ]
    assert legs("buy", position=-2, strategy_held=-2, quantity=5) == [
        (Intent.BUY_TO_COVER, 2),
        (Intent.BUY, 3),
    ]
