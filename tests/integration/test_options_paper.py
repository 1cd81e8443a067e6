"""Option alerts end to end on the paper broker: chosen from the chain, sized, risk-checked,
placed as one order (spreads as one multileg order), filled per leg, booked x100."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import ValidationError
from redis.asyncio import Redis

from app.brokers.paper import PaperBroker
from app.execution.engine import ExecutionEngine
from app.execution.store import ExecutionStore
from app.feeds.simulated import SimulatedFeed
from app.models.alerts import Alert
from app.models.instruments import multiplier_of
from app.models.market import Quote
from app.models.occ import parse_occ
from app.options.chains import OptionChains
from app.portfolio.book import AccountBook
from app.risk.engine import RiskEngine
from app.risk.limits import parse_limits
from tests.support.chains import FakeChains
from tests.support.limits import PERMISSIVE


class Market:
    def __init__(self, chains: FakeChains) -> None:
        self.chains = chains

    async def get(self, symbol: str) -> Quote | None:
        if symbol == self.chains.underlying:
            p = self.chains.price
            return Quote(symbol=symbol, time=time.time(), last=p, bid=p - 0.01, ask=p + 0.01)
        return self.chains.quote(symbol)


async def make(
    redis: Redis, limits: dict[str, Any] | None = None
) -> tuple[ExecutionEngine, FakeChains]:
    feed = FakeChains()
    market = Market(feed)
    book = AccountBook(account="default", cash=0.0, multiplier_of=multiplier_of)
    risk = RiskEngine(
        parse_limits({**PERMISSIVE, **(limits or {})}), market_hours="always", book=book
    )
    eng = ExecutionEngine(
        ExecutionStore(redis),
        PaperBroker(redis, market.get, slippage_bps=0, commission_per_contract=0.65),
        risk,
        market.get,
        chains=OptionChains(feed),
    )
    await eng.start()
    return eng, feed


@pytest.fixture
async def engine(redis: Redis) -> AsyncIterator[tuple[ExecutionEngine, FakeChains]]:
    eng, feed = await make(redis)
    yield eng, feed
    await eng.close()


async def settle(eng: ExecutionEngine) -> None:
    for _ in range(300):
        if not eng.tasks:
            return
        await asyncio.sleep(0.01)


def alert(**fields: Any) -> Alert:
    return Alert.model_validate({"ticker": "SPY", "action": "buy", "quantity": 1, **fields})


async def test_a_call_by_dte_and_delta_is_the_contract_the_chain_names(
    engine: tuple[ExecutionEngine, FakeChains],
) -> None:
    eng, feed = engine
    decision = await eng.handle_alert(
        alert(quantity=2, option={"right": "call", "dte": 28, "delta": 0.30})
    )
    assert decision.status == "accepted", decision.message
    expiry = feed.listed[1]  # 30 days: nearest to 28
    chain = await feed.chain("SPY", expiry)
    wanted = min(
        (q for q in chain.side(parse_occ(decision.option.legs[0].symbol).right)),  # type: ignore[union-attr]
        key=lambda q: abs(abs(q.delta or 0) - 0.30),
    )
    assert decision.option is not None
    assert (
        decision.option.legs[0].symbol == wanted.symbol == "SPY" + f"{expiry:%y%m%d}" + "C00620000"
    )
    assert (
        decision.option.greeks_age_seconds is not None and decision.option.greeks_age_seconds >= 60
    )
    await settle(eng)
    book = eng.book
    assert book.position(wanted.symbol) == 2
    assert wanted.ask is not None
    # premium x 100 x 2 contracts, plus 0.65 a contract
    assert book.cash == pytest.approx(100_000 - wanted.ask * 100 * 2 - 1.30)


async def test_a_bull_put_spread_sized_by_max_loss_never_risks_more(
    engine: tuple[ExecutionEngine, FakeChains],
) -> None:
    eng, _ = engine
    spread = {
        "dte": 30,
        "legs": [
            {"right": "put", "side": "sell", "strike": 590},
            {"right": "put", "side": "buy", "strike": 580},
        ],
    }
    decision = await eng.handle_alert(
        Alert.model_validate(
            {"ticker": "SPY", "action": "buy", "max_loss": 2500, "price": "mid", "option": spread}
        )
    )
    assert decision.status == "accepted", decision.message
    assert decision.option is not None and decision.option.net == "credit"
    credit = decision.option.net_price
    assert credit is not None
    per_unit = (10 - credit) * 100
    assert decision.quantity == int(2500 // per_unit)
    assert decision.quantity * per_unit <= 2500 < (decision.quantity + 1) * per_unit
    assert len(eng.orders) <= 1
    order = next(iter(eng.orders.values()), None) or await eng.store.get_order(
        decision.order_id or ""
    )
    assert order is not None and len(order.request.legs) == 2


async def test_an_iron_condor_is_one_order_and_exit_closes_it_as_one(
    engine: tuple[ExecutionEngine, FakeChains],
) -> None:
    eng, _ = engine
    condor = {"shape": "iron_condor", "dte": 30, "delta": 0.20, "width": 10}
    opened = await eng.handle_alert(
        Alert.model_validate(
            {
                "ticker": "SPY",
                "action": "sell",
                "quantity": 3,
                "strategy": "condor",
                "option": condor,
            }
        )
    )
    assert opened.status == "accepted", opened.message
    assert opened.option is not None and len(opened.option.legs) == 4
    order = await eng.store.get_order(opened.order_id or "")
    assert order is not None and order.request.multileg and order.request.quantity == 3
    sides = sorted(leg.intent.value for leg in order.request.legs)
    assert sides == ["buy", "buy", "sell_short", "sell_short"]
    await settle(eng)
    held = {p.symbol: p.quantity for p in eng.book.positions()}
    assert sorted(held.values()) == [-3, -3, 3, 3]
    assert all(p.multiplier == 100 for p in eng.book.positions())
    closed = await eng.handle_alert(
        Alert.model_validate(
            {"ticker": "SPY", "action": "exit", "strategy": "condor", "alert_id": "x1"}
        )
    )
    assert closed.status == "accepted", closed.message
    exit_order = await eng.store.get_order(closed.order_id or "")
    assert exit_order is not None and len(exit_order.request.legs) == 4
    assert exit_order.request.quantity == 3
    assert {leg.symbol for leg in exit_order.request.legs} == set(held)
    await settle(eng)
    assert eng.book.positions() == []


async def test_a_naked_short_call_is_denied_by_name(
    engine: tuple[ExecutionEngine, FakeChains],
) -> None:
    eng, _ = engine
    decision = await eng.handle_alert(
        alert(action="sell", option={"right": "call", "dte": 30, "delta": 0.2})
    )
    assert decision.status == "denied"
    assert (decision.check, decision.reason) == ("naked_call", "naked_short_call")


async def test_a_short_put_needs_the_cash_to_secure_it(
    engine: tuple[ExecutionEngine, FakeChains],
) -> None:
    eng, _ = engine
    decision = await eng.handle_alert(  # 2 x 590 x 100 = $118,000 against $100,000
        alert(action="sell", quantity=2, option={"right": "put", "dte": 30, "strike": 590})
    )
    assert (decision.check, decision.reason) == ("short_put", "not_cash_secured")


async def test_an_unlisted_strike_is_a_denial_naming_the_listed_ones(
    engine: tuple[ExecutionEngine, FakeChains],
) -> None:
    eng, _ = engine
    decision = await eng.handle_alert(alert(option={"right": "call", "dte": 30, "strike": 602}))
    assert (decision.status, decision.check, decision.reason) == ("denied", "option", "no_contract")
    assert "600" in (decision.message or "") and "605" in (decision.message or "")
    assert not eng.orders


def test_five_legs_are_refused_before_anything_is_decided() -> None:
    leg = {"right": "call", "side": "buy", "strike": 600}
    with pytest.raises(ValidationError, match="2 to 4 legs"):
        alert(option={"dte": 30, "legs": [leg] * 5})
    with pytest.raises(ValidationError, match="detla"):
        alert(option={"right": "call", "dte": 30, "detla": 0.3})


async def test_the_same_alerts_trade_offline_on_the_simulated_feed(redis: Redis) -> None:
    """``make run``'s set-up: chains and option quotes from the simulated feed."""
    feed = SimulatedFeed(["SPY"])
    await feed.start()

    async def quote(symbol: str) -> Quote | None:
        return (await feed.quotes([symbol])).get(symbol)

    book = AccountBook(account="default", cash=0.0, multiplier_of=multiplier_of)
    risk = RiskEngine(parse_limits(PERMISSIVE), market_hours="always", book=book)
    eng = ExecutionEngine(
        ExecutionStore(redis),
        PaperBroker(redis, quote, slippage_bps=0),
        risk,
        quote,
        chains=OptionChains(feed),
    )
    await eng.start()
    try:
        call = await eng.handle_alert(
            alert(option={"right": "call", "dte": 30, "delta": 0.3}, strategy="calls")
        )
        assert call.status == "accepted", call.message
        condor = await eng.handle_alert(
            Alert.model_validate(
                {
                    "ticker": "SPY",
                    "action": "sell",
                    "quantity": 1,
                    "price": "mid",
                    "strategy": "condor",
                    "option": {"shape": "iron_condor", "dte": 30, "delta": 0.16, "width": 5},
                }
            )
        )
        assert condor.status == "accepted", condor.message
        assert condor.option is not None and condor.option.net == "credit"
        await settle(eng)
        assert any(p.symbol == call.option.legs[0].symbol for p in eng.book.positions())  # type: ignore[union-attr]
    finally:
        await eng.close()
        await feed.close()


async def test_expiry_turns_an_itm_call_into_shares_and_an_otm_one_into_zero(
    redis: Redis,
) -> None:
    feed = FakeChains()
    market = Market(feed)
    now = [time.time()]
    book = AccountBook(account="default", cash=0.0, multiplier_of=multiplier_of)
    risk = RiskEngine(
        parse_limits(PERMISSIVE), market_hours="always", book=book, clock=lambda: now[0]
    )
    eng = ExecutionEngine(
        ExecutionStore(redis),
        PaperBroker(redis, market.get, slippage_bps=0),
        risk,
        market.get,
        chains=OptionChains(feed),
        clock=lambda: now[0],
    )
    await eng.start()
    try:
        bought = {}
        for strike in (620, 640):
            d = await eng.handle_alert(
                alert(option={"right": "call", "expiration": str(feed.listed[0]), "strike": strike})
            )
            assert d.status == "accepted", d.message
            bought[strike] = d.option.legs[0]  # type: ignore[union-attr]
        await settle(eng)
        itm, otm = bought[620].symbol, bought[640].symbol
        assert eng.expirer.due(now[0]) == []  # not before the expiration session closes
        cash_before = eng.book.cash
        now[0] += 9 * 86_400  # past the 7-day expiry's close
        feed.price = 630.0  # the 620 call is 10 in the money, the 640 call worthless
        assert eng.expirer.due(now[0]) == sorted([itm, otm])
        assert await eng.expirer.run_once() == sorted([itm, otm])
        await settle(eng)
        held = {p.symbol: p for p in eng.book.positions()}
        assert set(held) == {"SPY"}  # both contracts gone, 100 shares from the exercise
        assert held["SPY"].quantity == 100 and held["SPY"].avg_price == 620
        assert eng.book.cash == pytest.approx(cash_before - 620 * 100)
        premium = sum((bought[k].ask or 0) * 100 for k in bought)
        assert eng.book.holding(itm).realized_pnl + eng.book.holding(otm).realized_pnl == (
            pytest.approx(-premium)
        )
        assert await eng.expirer.run_once() == []  # settled once
    finally:
        await eng.close()


async def test_buying_power_counts_the_premium_not_the_shares(redis: Redis) -> None:
    share_checks = ("concentration", "sector_concentration", "leverage", "position_size")
    eng, _ = await make(redis, dict.fromkeys((*share_checks, "order_notional")))
    try:  # $100,000 equity: $200,000 buying power
        deep = {"right": "call", "dte": 30, "strike": 560}  # about $41 a share, $4,100 a contract
        ok = await eng.handle_alert(alert(quantity=40, option=deep))
        assert ok.status == "accepted", ok.message  # $164,000 of premium
        more = await eng.handle_alert(alert(quantity=10, option=deep, alert_id="more"))
        assert (more.check, more.reason) == ("option_buying_power", "insufficient_buying_power")
    finally:
        await eng.close()


async def test_premium_budget_buys_as_many_debits_as_it_pays_for(
    engine: tuple[ExecutionEngine, FakeChains],
) -> None:
    eng, _ = engine
    vertical = {"shape": "vertical", "right": "call", "dte": 30, "atm_offset": 0, "width": 10}
    d = await eng.handle_alert(
        Alert.model_validate(
            {
                "ticker": "SPY",
                "action": "buy",
                "premium_budget": 1500,
                "price": "natural",
                "option": vertical,
            }
        )
    )
    assert d.status == "accepted", d.message
    assert d.option is not None and d.option.net == "debit" and d.option.net_price is not None
    cost = d.option.net_price * 100
    assert d.quantity == int(1500 // cost) and d.quantity * cost <= 1500


async def test_a_limit_spread_rests_until_the_net_mid_reaches_it(
    engine: tuple[ExecutionEngine, FakeChains],
) -> None:
    eng, feed = engine
    vertical = {"shape": "vertical", "right": "call", "dte": 30, "atm_offset": 0, "width": 10}
    d = await eng.handle_alert(
        Alert.model_validate(
            {
                "ticker": "SPY",
                "action": "buy",
                "quantity": 1,
                "order_type": "limit",
                "price": 2.0,
                "option": vertical,
            }
        )
    )
    assert d.status == "accepted", d.message
    await settle(eng)
    assert eng.book.positions() == [] and d.order_id in eng.orders  # mid ~5.2: resting
    feed.price = 560.0  # the 600/610 call spread is nearly worthless now
    await eng.on_quote(await Market(feed).get("SPY"))  # type: ignore[arg-type]
    await settle(eng)
    held = {p.symbol: p.quantity for p in eng.book.positions()}
    assert sorted(held.values()) == [-1, 1]
    order = await eng.store.get_order(d.order_id or "")
    assert order is not None and order.status.value == "filled"
    assert order.avg_fill_price is not None and 0 < order.avg_fill_price <= 2.0
