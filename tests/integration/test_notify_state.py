"""Breaker trips and unresolved executions reach the trader: a real execution engine (paper
broker, real redis-server) publishes its risk snapshot as the account's service loop does,
and the real notifier delivers through apprise to a local fake channel
(tests/integration/test_notify.py's).

- the broker fails three orders in a row: the circuit breaker opens, one "Circuit breaker
  OPEN" message arrives (with the trip reason), and publishing the same state again sends
  nothing more;
- an alert whose write outcome is unknown (the reply was lost, the read-back failed) is held:
  one "execution(s) ... wait" message arrives; once Redis answers and the alert is resolved,
  one "resolved" message follows.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import pytest
from redis.asyncio import Redis

from app.brokers.base import BrokerError
from app.brokers.paper import PaperBroker
from app.execution.decisions import RetryLaterError
from app.execution.engine import ExecutionEngine
from app.execution.store import ExecutionStore
from app.models.alerts import Alert
from app.risk.engine import RiskEngine
from app.risk.limits import parse_limits
from tests.faults import down_while, reply_lost
from tests.integration.test_engine import Tape, settle
from tests.integration.test_notify import FakeChannel, notifier, wait_until
from tests.support.limits import PERMISSIVE

pytestmark = pytest.mark.integration

# the kinds under test (the fill the held alert finally makes is test_notify.py's subject)
STATE_KINDS = ("breaker", "unresolved")
BREAKER = {"max_errors": 3, "error_window_seconds": 60, "cooldown_seconds": 600}


def engine_for(redis: Redis, account: str, **limits: Any) -> ExecutionEngine:
    tape = Tape()
    tape.set("AAPL", 100.0)
    return ExecutionEngine(
        ExecutionStore(redis, account=account),
        PaperBroker(redis, tape.get, slippage_bps=0),
        RiskEngine(parse_limits({**PERMISSIVE, **limits}), market_hours="always"),
        tape.get,
    )


async def test_a_breaker_trip_arrives_once(redis: Redis) -> None:
    account = f"brk-{secrets.token_hex(3)}"
    eng = engine_for(redis, account, circuit_breaker=BREAKER)
    failures: list[str] = []

    async def broker_down(order: Any) -> str:
        failures.append(order.id)
        raise BrokerError("broker unavailable (simulated)")

    eng.broker.submit = broker_down  # type: ignore[method-assign]
    channel = FakeChannel()
    await channel.up()
    await eng.start()
    try:
        async with notifier(redis, channel, kinds=STATE_KINDS):
            await eng.publish_snapshot()  # closed: nothing to say
            for n in range(3):
                await eng.handle_alert(
                    Alert(ticker="AAPL", action="buy", quantity=1, alert_id=f"{account}-{n}")
                )
                await settle(eng)
            assert len(failures) == 3
            assert eng.risk.snapshot()["circuit_breaker"]["state"] == "OPEN"
            await eng.publish_snapshot()  # what the account's service does every second
            await wait_until(
                lambda: bool(channel.titled("^Circuit breaker")), 15, "the breaker message"
            )
            await eng.publish_snapshot()
            await eng.publish_snapshot()
            await asyncio.sleep(1.5)  # a few coalescing windows: nothing is sent twice
    finally:
        await eng.close()
        await channel.down()
    assert len(channel.messages) == 1, channel.messages
    (message,) = channel.messages
    assert f"Circuit breaker OPEN on {account}" in message["message"]
    assert "broker_errors" in message["message"]


async def test_an_unresolved_execution_and_its_resolution_each_arrive_once(
    redis: Redis,
) -> None:
    account = f"unr-{secrets.token_hex(3)}"
    eng = engine_for(redis, account)
    down = [True]
    eng.store.save_alert = reply_lost(eng.store.save_alert)  # type: ignore[method-assign]
    eng.store.decision_is = down_while(eng.store.decision_is, down)  # type: ignore[method-assign]
    alert = Alert(ticker="AAPL", action="buy", quantity=2, alert_id=f"{account}-held")
    channel = FakeChannel()
    await channel.up()
    await eng.start()
    try:
        async with notifier(redis, channel, kinds=STATE_KINDS):
            with pytest.raises(RetryLaterError):
                await eng.handle_alert(alert)
            await settle(eng)
            await eng.publish_snapshot()
            await wait_until(
                lambda: bool(channel.titled("^Execution unresolved")), 15, "the unresolved message"
            )
            await eng.publish_snapshot()  # still held: nothing new to say
            await asyncio.sleep(1.5)
            assert len(channel.messages) == 1, channel.messages
            assert f"1 execution(s) on {account} wait" in channel.messages[0]["message"]

            down[0] = False  # Redis answers again: the retry learns the alert was stored
            again = await eng.handle_alert(alert)
            assert again.status == "accepted" and again.duplicate
            await settle(eng)
            await eng.reconciler.watch_once()
            await eng.publish_snapshot()
            await wait_until(lambda: len(channel.messages) == 2, 15, "the resolved message")
            await asyncio.sleep(1.5)
    finally:
        await eng.close()
        await channel.down()
    assert len(channel.messages) == 2, channel.messages
    assert f"Executions on {account} resolved" in channel.messages[1]["message"]
