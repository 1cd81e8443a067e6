"""The option risk checks, each named with its reason, on orders as the planner makes
them (one contract; a spread with legs), with quotes and greeks from a chain."""

from __future__ import annotations

import time
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest

from app.models.instruments import multiplier_of
from app.models.occ import OptionRight, expiry_date
from app.models.orders import Intent, OrderLeg, OrderRequest, OrderType
from app.options.chain import OptionQuote
from app.portfolio.book import AccountBook
from app.risk.engine import RiskEngine
from app.risk.limits import parse_limits
from tests.support.limits import PERMISSIVE

TODAY = expiry_date()  # expiries are New York dates
EXPIRY = TODAY + timedelta(days=30)


def contract(right: OptionRight, strike: int, expiry: date = EXPIRY, **kw: Any) -> OptionQuote:
    fields = {"bid": 1.00, "ask": 1.10, "delta": 0.30 if right is OptionRight.CALL else -0.30}
    return OptionQuote.of("SPY", expiry, right, Decimal(strike), **(fields | kw))


def engine(options: dict[str, Any] | None = None, *quotes: OptionQuote) -> RiskEngine:
    book = AccountBook(account="a", cash=100_000.0, multiplier_of=multiplier_of)
    book.roll(time.time())
    limits = {**PERMISSIVE, "options": options or {}}
    risk = RiskEngine(parse_limits(limits), market_hours="always", book=book)
    by_symbol = {q.symbol: q for q in quotes}
    risk.option_quote = by_symbol.get
    return risk


def single(q: OptionQuote, intent: Intent = Intent.BUY, qty: int = 1) -> OrderRequest:
    return OrderRequest(client_order_id="o1", symbol=q.symbol, intent=intent, quantity=qty)


def spread(
    *legs: tuple[OptionQuote, Intent], units: int = 1, credit: float | None = None
) -> OrderRequest:
    return OrderRequest(
        client_order_id="s1",
        symbol="SPY",
        intent=Intent.SELL if credit else Intent.BUY,
        quantity=units,
        order_type=OrderType.LIMIT if credit else OrderType.MARKET,
        limit_price=credit,
        net="credit" if credit else None,
        legs=tuple(OrderLeg(symbol=q.symbol, intent=i) for q, i in legs),
    )


def denied(
    risk: RiskEngine, order: OrderRequest, price: float | None = 1.05
) -> tuple[str | None, str | None]:
    verdict = risk.check(order, price)
    return (verdict.check, verdict.reason) if not verdict.allowed else (None, None)


def test_contracts_per_order() -> None:
    q = contract(OptionRight.CALL, 600)
    risk = engine({"max_contracts_per_order": 10}, q)
    assert denied(risk, single(q, qty=10)) == (None, None)
    assert denied(risk, single(q, qty=11)) == ("option_contracts", "max_contracts")


def test_premium_per_order() -> None:
    q = contract(OptionRight.CALL, 600)
    risk = engine({"max_premium_per_order": 1_000}, q)
    assert denied(risk, single(q, qty=9), 1.10) == (None, None)  # $990
    assert denied(risk, single(q, qty=10), 1.10) == ("option_premium", "max_premium")


def test_max_loss_per_position_is_width_minus_credit() -> None:
    short, long_ = contract(OptionRight.PUT, 590), contract(OptionRight.PUT, 580)
    risk = engine({"max_loss_per_position": 1_700}, short, long_)
    legs = ((short, Intent.SELL_SHORT), (long_, Intent.BUY))
    # (10 - 1.50) x 100 x 2 = 1,700: allowed; a third unit is 2,550
    assert denied(risk, spread(*legs, units=2, credit=1.50)) == (None, None)
    assert denied(risk, spread(*legs, units=3, credit=1.50)) == (
        "option_max_loss",
        "max_position_loss",
    )


def test_zero_dte_is_off_unless_allowed_and_far_expiries_can_be_capped() -> None:
    today = contract(OptionRight.CALL, 600, TODAY)
    far = contract(OptionRight.CALL, 600, TODAY + timedelta(days=400))
    assert denied(engine({}, today), single(today)) == ("option_dte", "min_dte")
    assert denied(engine({"min_dte": 0}, today), single(today)) == (None, None)
    assert denied(engine({"max_dte": 365}, far), single(far)) == ("option_dte", "max_dte")


def test_an_illiquid_contract_is_denied_naming_its_width() -> None:
    wide = contract(OptionRight.CALL, 650, bid=0.10, ask=0.40)
    risk = engine({"max_spread_pct": 50}, wide)
    verdict = risk.check(single(wide), 0.25)
    assert (verdict.check, verdict.reason) == ("option_spread", "wide_spread")
    assert "0.10/0.40" in verdict.message and verdict.detail["width"] == pytest.approx(0.30)
    no_bid = contract(OptionRight.CALL, 660, bid=0.0, ask=0.05)
    assert denied(engine({}, no_bid), single(no_bid), 0.05) == ("option_spread", "no_market")


def test_net_delta_per_underlying_counts_shares_and_contracts() -> None:
    q = contract(OptionRight.CALL, 600, delta=0.5)
    risk = engine({"max_delta_per_underlying": 500}, q)
    assert denied(risk, single(q, qty=10)) == (None, None)  # 10 x 0.5 x 100 = 500
    assert denied(risk, single(q, qty=11)) == ("option_delta", "max_underlying_delta")
    risk.book.set_position("SPY", 100, 600.0)  # 100 shares are 100 deltas
    assert denied(risk, single(q, qty=9)) == ("option_delta", "max_underlying_delta")


def test_closing_is_never_stopped_by_the_option_checks() -> None:
    q = contract(OptionRight.CALL, 600, bid=0.01, ask=0.50)  # illiquid
    risk = engine({"max_contracts_per_order": 1}, q)
    risk.book.set_position(q.symbol, 5, 1.0)
    assert denied(risk, single(q, Intent.SELL, qty=5), 0.01) == (None, None)
