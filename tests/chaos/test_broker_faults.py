"""A slow and failing broker behind the execution engine: the circuit breaker trips,
denies new risk while open, lets one probe through after the cool-down, closes on
its success; the broker sees exactly one POST per accepted order (no blind resubmit).

The broker is ``TradierBroker`` against the local Tradier stand-in (5xx answers,
answers slower than our timeout, dropped connections), on a real Redis.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from app.brokers.tradier import TradierBroker
from app.execution.engine import ExecutionEngine
from app.execution.store import ExecutionStore
from app.models.alerts import Alert, AlertAction, Decision
from app.models.market import Quote
from app.models.orders import OrderStatus
from app.retry import RetryPolicy
from app.risk.engine import RiskEngine
from app.risk.limits import parse_limits
from tests.chaos.common import LONG
from tests.fakes.tradier_orders import TradierAccount, running_account
from tests.support.poll import until

pytestmark = pytest.mark.timeout(300 if LONG else 60)

ACCOUNT = "VA000777"
ORDERS = f"/accounts/{ACCOUNT}/orders"
COOLDOWN = 1.0
BROKER_TIMEOUT = 1.0  # the engine's deadline for one submit; the "slow" broker takes 2 s
ROUNDS = 10 if LONG else 2
FAST = RetryPolicy(
    attempts=3,
    total_timeout=5.0,
    wait_initial=0.01,
    wait_max=0.05,
    wait_jitter=0.01,
    retry_after_max=1.0,
)
LIMITS = {
    "circuit_breaker": {
        "error_window_seconds": 30,
        "max_errors": 2,
        "max_error_ratio": None,
        "max_loss": None,
        "cooldown_seconds": COOLDOWN,
        "half_open_max_orders": 1,
    },
    "market_hours": None,
    "rate_limit": None,
    "duplicate": None,
    "price_collar": None,
    "volatility": None,
    "concentration": None,
    "sector_concentration": None,
    "max_open_positions": None,
    "buying_power": None,
    "leverage": None,
}


async def quote(symbol: str) -> Quote:
    return Quote(symbol=symbol, time=time.time(), last=100.0, bid=99.99, ask=100.01)


@pytest.fixture
async def account() -> AsyncIterator[TradierAccount]:
    async with running_account(ACCOUNT) as acct:
        yield acct


@pytest.fixture
async def engine(redis: Redis, account: TradierAccount) -> AsyncIterator[ExecutionEngine]:
    broker = TradierBroker(
        account.fake.token,
        ACCOUNT,
        account.fake.base_url,
        timeout=0.5,
        retry=FAST,
        poll_interval=0.05,
    )
    eng = ExecutionEngine(
        ExecutionStore(redis),
        broker,
        RiskEngine(parse_limits(LIMITS), market_hours="always"),
        quote,
        broker_timeout=BROKER_TIMEOUT,
    )
    await eng.start()
    try:
        yield eng
    finally:
        await eng.close()


def breaker(engine: ExecutionEngine) -> dict[str, Any]:
    assert engine.risk.breaker is not None
    return engine.risk.breaker.snapshot(engine.risk.clock())


class Run:
    def __init__(self, engine: ExecutionEngine) -> None:
        self.engine = engine
        self.n = 0
        self.decisions: list[Decision] = []

    async def alert(self) -> Decision:
        self.n += 1
        alert = Alert(ticker="AAPL", action=AlertAction.BUY, quantity=1, alert_id=f"bf-{self.n}")
        decision = await self.engine.handle_alert(alert)
        self.decisions.append(decision)
        return decision

    @property
    def accepted(self) -> list[Decision]:
        return [d for d in self.decisions if d.status == "accepted"]

    async def settled(self, order_id: str | None) -> None:
        """The background submit of ``order_id`` has finished (any outcome)."""
        assert order_id

        async def done() -> bool:
            stored = await self.engine.store.get_order(order_id)
            return stored is not None and stored.status is not OrderStatus.NEW

        await until(done, 10, f"order {order_id} left NEW")


async def test_breaker_trips_on_a_slow_and_failing_broker_and_recovers(
    engine: ExecutionEngine, account: TradierAccount
) -> None:
    run = Run(engine)
    report: Counter[str] = Counter()
    ok = await run.alert()  # healthy
    assert ok.status == "accepted"
    await run.settled(ok.order_id)
    for rnd in range(ROUNDS):
        # 1. a 5xx on place: unknown (never resent), one broker error
        account.fake.fail(ORDERS, 502 if rnd % 2 else 500, method="POST")
        first = await run.alert()
        assert first.status == "accepted"
        await run.settled(first.order_id)
        assert breaker(engine)["state"] == "CLOSED"
        # 2. a place answered after 2 s, past our deadline: unknown, second error -> OPEN
        account.fake.fail(ORDERS, None, delay=2.0, method="POST")
        slow = await run.alert()
        assert slow.status == "accepted"
        await run.settled(slow.order_id)
        snap = breaker(engine)
        assert snap["state"] == "OPEN" and snap["trip_reason"] == "broker_errors", snap
        report["trips"] += 1
        # 3. while open: new risk is denied by the breaker, nothing is sent
        posts = account.posts()
        for _ in range(3):
            denied = await run.alert()
            assert (denied.status, denied.check, denied.reason) == (
                "denied",
                "circuit_breaker",
                "open",
            ), denied
            report["denied_open"] += 1
        assert account.posts() == posts
        # 4. after the cool-down: one probe (slowish, but in time); a second is held back
        await asyncio.sleep(COOLDOWN + 0.05)
        account.fake.fail(ORDERS, None, delay=0.3, method="POST")
        probe = await run.alert()
        assert probe.status == "accepted", probe
        held = await run.alert()
        assert (held.check, held.reason) == ("circuit_breaker", "half_open_probe_pending"), held
        report["denied_half_open"] += 1
        await run.settled(probe.order_id)
        assert breaker(engine)["state"] == "CLOSED", breaker(engine)
        report["recoveries"] += 1
        after = await run.alert()
        assert after.status == "accepted"
        await run.settled(after.order_id)

    # the slow places did reach Tradier: the poller finds them by tag (no resubmit)
    for d in run.accepted:
        assert d.order_id

        async def known(oid: str = d.order_id) -> bool:
            stored = await engine.store.get_order(oid)
            return stored is not None and stored.status is not OrderStatus.NEW

        await until(known, 5, d.order_id)
    await asyncio.sleep(0.3)  # a few poll cycles: any resubmit would show up now
    tags = Counter(form.get("tag") for form in account.forms)
    assert account.posts() == len(run.accepted), (account.posts(), len(run.accepted))
    assert {t: n for t, n in tags.items() if n > 1} == {}
    statuses: Counter[str] = Counter()
    for d in run.accepted:
        stored = await engine.store.get_order(d.order_id or "")
        assert stored is not None
        statuses[stored.status.value] += 1
    report["accepted"] = len(run.accepted)
    report["posts"] = account.posts()
    print("\nCHAOS broker faults:", json.dumps(report), dict(statuses))
