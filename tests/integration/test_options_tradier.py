"""Option alerts through the engine against the Tradier-protocol server: the chain from
its expirations and chains endpoints (greeks included), the orders to its order endpoint
(``class=option``, ``class=multileg``), the executions back as fills, x100 in the book."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from redis.asyncio import Redis

from app.brokers.tradier import TradierBroker
from app.execution.engine import ExecutionEngine
from app.execution.store import ExecutionStore
from app.feeds.tradier import TradierFeed
from app.models.alerts import Alert
from app.models.instruments import multiplier_of
from app.models.market import Quote
from app.models.occ import expiry_date
from app.options.chains import OptionChains
from app.portfolio.book import AccountBook
from app.retry import RetryPolicy
from app.risk.engine import RiskEngine
from app.risk.limits import parse_limits
from tests.fakes.tradier_orders import TradierAccount, running_account
from tests.support.limits import PERMISSIVE
from tests.support.poll import until

NY_TODAY = expiry_date()  # expiries are New York dates

ACCOUNT = "VA000001"
FAST = RetryPolicy(attempts=2, total_timeout=5.0, wait_initial=0.01, wait_max=0.05)
EXPIRY = NY_TODAY + timedelta(days=30)


async def spot(symbol: str) -> Quote:
    return Quote(symbol=symbol, time=time.time(), last=600.0, bid=599.99, ask=600.01)


@pytest.fixture
async def stack(redis: Redis) -> AsyncIterator[tuple[ExecutionEngine, TradierAccount]]:
    async with running_account(ACCOUNT) as acct:
        fake = acct.fake
        fake.list_options(
            "SPY",
            600.0,
            {NY_TODAY + timedelta(days=7): 7 / 365, EXPIRY: 30 / 365},
            range(500, 705, 5),
        )
        acct.fill_mode = "immediate"
        feed = TradierFeed(fake.token, fake.base_url, retry=FAST)
        await feed.start()
        broker = TradierBroker(
            fake.token, ACCOUNT, fake.base_url, timeout=2.0, retry=FAST, poll_interval=0.02
        )
        book = AccountBook(account="default", cash=0.0, multiplier_of=multiplier_of)
        engine = ExecutionEngine(
            ExecutionStore(redis),
            broker,
            RiskEngine(parse_limits(PERMISSIVE), market_hours="always", book=book),
            spot,
            chains=OptionChains(feed),
            adopt_book=False,
        )
        await engine.start()
        try:
            yield engine, acct
        finally:
            await engine.close()
            await feed.close()


def posted(acct: TradierAccount) -> list[dict[str, str]]:
    return acct.forms


async def test_a_call_by_delta_is_the_chains_contract_sent_as_class_option(
    stack: tuple[ExecutionEngine, TradierAccount],
) -> None:
    engine, acct = stack
    chain = await engine.options.chains.chain("SPY", EXPIRY)  # type: ignore[union-attr]
    wanted = min(chain.side(chain.quotes[0].right), key=lambda q: abs((q.delta or 0) - 0.30))
    acct.prices[wanted.symbol] = 3.20
    decision = await engine.handle_alert(
        Alert.model_validate(
            {
                "ticker": "SPY",
                "action": "buy",
                "quantity": 2,
                "option": {"right": "call", "dte": 30, "delta": 0.30},
            }
        )
    )
    assert decision.status == "accepted", decision.message
    assert decision.option is not None and decision.option.legs[0].symbol == wanted.symbol
    await until(lambda: engine.book.position(wanted.symbol) == 2)
    form = posted(acct)[-1]
    assert (form["class"], form["option_symbol"], form["side"], form["quantity"]) == (
        "option",
        wanted.symbol,
        "buy_to_open",
        "2",
    )
    assert engine.book.cash == pytest.approx(100_000 - 3.20 * 100 * 2)


async def test_an_iron_condor_is_one_multileg_order_and_exit_closes_it_as_one(
    stack: tuple[ExecutionEngine, TradierAccount],
) -> None:
    engine, acct = stack
    opened = await engine.handle_alert(
        Alert.model_validate(
            {
                "ticker": "SPY",
                "action": "sell",
                "quantity": 2,
                "price": "mid",
                "strategy": "condor",
                "option": {"shape": "iron_condor", "dte": 30, "delta": 0.16, "width": 10},
            }
        )
    )
    assert opened.status == "accepted", opened.message
    await until(lambda: len(engine.book.positions()) == 4)
    assert len(posted(acct)) == 1
    form: dict[str, Any] = posted(acct)[-1]
    assert form["class"] == "multileg" and form["type"] == "credit"
    legs = {form[f"option_symbol[{i}]"]: form[f"side[{i}]"] for i in range(4)}
    assert sorted(legs.values()) == ["buy_to_open", "buy_to_open", "sell_to_open", "sell_to_open"]
    assert all(form[f"quantity[{i}]"] == "2" for i in range(4))
    assert "option_symbol[4]" not in form
    held = {p.symbol: p.quantity for p in engine.book.positions()}
    assert {s: (2 if side == "buy_to_open" else -2) for s, side in legs.items()} == held
    count = len(posted(acct))
    closed = await engine.handle_alert(
        Alert.model_validate({"ticker": "SPY", "action": "exit", "strategy": "condor"})
    )
    assert closed.status == "accepted", closed.message
    await until(lambda: engine.book.positions() == [])
    assert len(posted(acct)) == count + 1  # one order for the four legs
    exit_form = posted(acct)[-1]
    assert exit_form["class"] == "multileg" and exit_form["type"] == "market"
    exits = {exit_form[f"option_symbol[{i}]"]: exit_form[f"side[{i}]"] for i in range(4)}
    assert {s: ("sell_to_close" if q > 0 else "buy_to_close") for s, q in held.items()} == exits


async def test_at_expiry_the_brokers_positions_are_adopted(
    stack: tuple[ExecutionEngine, TradierAccount],
) -> None:
    engine, acct = stack
    gone = (NY_TODAY - timedelta(days=3)).strftime("SPY%y%m%dC00600000")
    engine.book.set_position(gone, 1, 2.0)  # held here; Tradier settled it already
    engine.book.set_position("SPY", 100, 600.0)
    acct.positions = [
        {"symbol": "SPY", "quantity": 100, "cost_basis": 60_000.0, "date_acquired": "2026-12-04"}
    ]
    acct.balances = {"total_equity": 100_000.0, "total_cash": 40_000.0}
    assert engine.expirer.due(time.time()) == [gone]
    assert await engine.expirer.run_once() == [gone]
    assert {p.symbol: p.quantity for p in engine.book.positions()} == {"SPY": 100}
    assert engine.book.cash == 40_000.0


async def test_a_bull_put_spread_sized_by_max_loss_never_risks_more(
    stack: tuple[ExecutionEngine, TradierAccount],
) -> None:
    engine, acct = stack
    decision = await engine.handle_alert(
        Alert.model_validate(
            {
                "ticker": "SPY",
                "action": "buy",
                "max_loss": 3000,
                "price": "natural",
                "strategy": "bps",
                "option": {
                    "dte": 30,
                    "legs": [
                        {"right": "put", "side": "sell", "delta": 0.30},
                        {"right": "put", "side": "buy", "delta": 0.15},
                    ],
                },
            }
        )
    )
    assert decision.status == "accepted", decision.message
    choice = decision.option
    assert choice is not None and choice.net == "credit" and choice.max_loss is not None
    short, long_ = (leg.strike for leg in choice.legs)
    assert choice.max_loss == pytest.approx((short - long_ - (choice.net_price or 0)) * 100)
    units = decision.quantity or 0
    assert units * choice.max_loss <= 3000 < (units + 1) * choice.max_loss
    await until(lambda: bool(posted(acct)))
    form = posted(acct)[-1]
    assert (form["class"], form["type"], form["quantity[0]"]) == ("multileg", "credit", str(units))
    assert float(form["price"]) == choice.net_price


async def test_a_naked_short_call_is_denied_by_name_and_not_sent(
    stack: tuple[ExecutionEngine, TradierAccount],
) -> None:
    engine, acct = stack
    decision = await engine.handle_alert(
        Alert.model_validate(
            {
                "ticker": "SPY",
                "action": "sell",
                "quantity": 1,
                "option": {"right": "call", "dte": 30, "delta": 0.2},
            }
        )
    )
    assert (decision.status, decision.check, decision.reason) == (
        "denied",
        "naked_call",
        "naked_short_call",
    )
    assert posted(acct) == []
