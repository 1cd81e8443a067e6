"""Redis stopped (SIGTERM) and started again (same directory, AOF) under webhook load.

What clients were told is compared with what Redis holds afterwards: every 2xx
decision is stored, every accepted order exists and fills, no fill is lost or doubled.
During the outage the webhook may answer 503 (nothing placed) or not at all; after
Redis is back it answers 202 again within a few seconds, without a datahub restart.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter, defaultdict
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.brokers.paper import PaperBroker
from app.bus import create_redis
from app.execution.decisions import RetryLaterError
from app.execution.engine import ExecutionEngine
from app.execution.store import ExecutionStore
from app.models.alerts import Alert, AlertAction, Decision
from app.models.market import Quote
from app.models.orders import Order, OrderType
from app.risk.engine import RiskEngine
from tests.chaos.common import (
    LONG,
    Datahub,
    alert_body,
    decision,
    duplicates,
    fill_entries,
    open_loop_alerts,
    post_alert,
    wait_all_filled,
    wait_http,
)
from tests.faults import Lost, fails, reply_lost
from tests.servers import RedisServer

pytestmark = pytest.mark.timeout(600 if LONG else 150)

ROUNDS = 3 if LONG else 1
COUNT = 1200 if LONG else 360
RATE = 60.0
STOP_AFTER = 1.5  # seconds into the load
DOWN_FOR = 1.5  # seconds Redis stays down
RECOVERY_BUDGET = 5.0  # seconds after Redis is back until the webhook answers 202 again


async def bounce(server: RedisServer, after: float, down_for: float) -> tuple[float, float]:
    """SIGTERM Redis (it writes its AOF and exits), wait, start it on the same port/dir."""
    await asyncio.sleep(after)
    stopped = time.monotonic()
    await asyncio.to_thread(server.stop)
    await asyncio.sleep(down_for)
    await asyncio.to_thread(server.start)
    return stopped, time.monotonic()


async def test_redis_restart_under_load_loses_no_acknowledged_order_or_fill(
    hub: Datahub, redis_server: RedisServer
) -> None:
    report: dict[str, Any] = defaultdict(int)
    hub.start()
    await wait_http(hub.url, "/ready")
    every = []
    for rnd in range(ROUNDS):
        tag = f"redis{rnd}"
        load = asyncio.create_task(open_loop_alerts(hub.url, tag, COUNT, RATE, timeout=3.0))
        stopped, restarted = await bounce(redis_server, STOP_AFTER, DOWN_FOR)
        told = await load
        every += told
        report["restarts"] += 1
        statuses = Counter(t.status for t in told)
        assert set(statuses) <= {0, 200, 202, 503}, statuses
        for code, n in statuses.items():
            report[f"http_{code}"] += n
        # back to 202 within the budget, without restarting the datahub
        after = sorted(t.answered_at for t in told if t.status == 202 and t.sent_at > restarted)
        assert after, f"no alert accepted after Redis came back: {statuses}\n{hub.logs()}"
        recovery = after[0] - restarted
        report["recovery_s_max"] = max(report["recovery_s_max"], round(recovery, 3))
        assert recovery < RECOVERY_BUDGET, recovery
        outage = [t for t in told if stopped <= t.sent_at <= restarted]
        report["sent_during_outage"] += len(outage)
        assert hub.proc is not None and hub.proc.poll() is None, "the datahub died"

    client = Redis.from_url(redis_server.url)
    try:
        orders = await wait_all_filled(client, timeout=60)
        by_id = {o["id"]: o for o in orders}
        fills = await fill_entries(client)
        assert duplicates([f["id"] for f in fills]) == {}
        assert duplicates([o["request"]["alert_id"] for o in orders]) == {}
        qty: Counter[str] = Counter()
        for f in fills:
            qty[f["order_id"]] += f["quantity"]
        for t in every:
            stored = await decision(client, t.alert_id)
            if 200 <= t.status < 300:  # acknowledged: must be in Redis, and filled
                deadline = time.monotonic() + 30
                while t.body["status"] == "queued" and not isinstance(stored, dict):
                    assert time.monotonic() < deadline, (t, stored)  # taken in: decided later
                    await asyncio.sleep(0.1)
                    stored = await decision(client, t.alert_id)
                assert isinstance(stored, dict), (t, stored)
                if t.body["status"] == "queued":
                    report["queued_then_decided"] += 1
                    t.body = stored
                assert stored["status"] == t.body["status"]
                if t.body["status"] == "accepted":
                    order = by_id[t.body["order_id"]]
                    assert order["status"] == "filled", order
                    assert qty[order["id"]] == order["request"]["quantity"], order
                    report["accepted_and_filled"] += 1
                else:
                    report["denied_recorded"] += 1
            elif t.status == 503 and "nothing was placed" in t.body.get("error", ""):
                placed = [o for o in orders if o["request"]["alert_id"] == t.alert_id]
                assert placed == [], (t, placed)
                if stored == "pending":
                    report["503_left_pending_claim"] += 1
            elif t.status == 503:  # the write's outcome was unknown: placed once or not at all
                assert "retry later" in t.body.get("error", ""), t.body
                placed = [o for o in orders if o["request"]["alert_id"] == t.alert_id]
                assert len(placed) <= 1, (t, placed)
                report["503_outcome_unknown"] += 1
        report["orders"] = len(orders)
        report["fills"] = len(fills)

        # re-post what got a 503 or no answer: decided exactly once, never "in progress"
        async with httpx.AsyncClient(timeout=10) as http:
            stuck = []
            for t in every:
                if 200 <= t.status < 300:
                    continue
                rnd, i = t.alert_id.split("-")
                for _ in range(20):  # a 503 means "retry later" while Redis settles
                    again = await post_alert(http, hub.url, alert_body(int(i), rnd))
                    if again.status != 503:
                        break
                    await asyncio.sleep(0.25)
                assert again.status in (200, 202), again
                if again.body.get("reason") == "in_progress":
                    stuck.append(t.alert_id)
                report["reposted"] += 1
        report["reposted_stuck_in_progress"] = len(stuck)
        orders = await wait_all_filled(client, timeout=60)
        assert duplicates([o["request"]["alert_id"] for o in orders]) == {}
        assert duplicates([f["id"] for f in await fill_entries(client)]) == {}
        print("\nCHAOS redis restart:", json.dumps(report, sort_keys=True))
        assert stuck == [], f"alerts left claimed but undecided by the outage: {stuck}"
    finally:
        await client.aclose()


# -- the mechanism, deterministically ----------------------------------------------------
class _DiesOnFirstSave(ExecutionStore):
    """The store, but Redis goes away right after the alert is claimed (first save)."""

    def __init__(self, redis: Redis, server: RedisServer) -> None:
        super().__init__(redis)
        self.server = server
        self.armed = True

    async def save_alert(self, orders: list[Order], decision: Decision, **kw: Any) -> bool:
        if self.armed:
            self.armed = False
            await asyncio.to_thread(self.server.stop)
        return await super().save_alert(orders, decision, **kw)


async def test_an_alert_refused_with_503_can_be_retried_after_redis_returns(
    redis_server: RedisServer,
) -> None:
    """503 says "nothing was placed, retry later": the retry must be decided, not refused.

    Redis dies between the idempotency claim and the order write; the claim cannot be
    released (Redis is down) and survives in the AOF as ``pending`` with the alert TTL
    (7 days), so every retry is answered ``in_progress`` until then. (Session 2: the
    engine also holds the alert until it can read whether the write was stored; the
    retry finds it was not, drops the held order and decides the alert afresh.)
    """
    redis = create_redis(redis_server.url, timeout=0.5)
    store = _DiesOnFirstSave(redis, redis_server)

    async def quote(symbol: str) -> Quote:
        return Quote(symbol=symbol, time=time.time(), last=100.0, bid=99.99, ask=100.01)

    engine = ExecutionEngine(
        store, PaperBroker(redis, quote), RiskEngine(market_hours="always"), quote
    )
    await engine.start()
    try:
        alert = Alert(ticker="AAPL", action=AlertAction.BUY, quantity=1, alert_id="retry-me")
        # Redis is gone: was the write stored? Unknown, so the alert is held (unsent) and
        # the webhook answers 503 "retry later"
        with pytest.raises(RetryLaterError):
            await engine.handle_alert(alert)
        assert engine.orders  # held, counted by risk, not sent
        await asyncio.to_thread(redis_server.start)
        again = await engine.handle_alert(alert)
        assert (again.status, again.reason) != ("denied", "in_progress"), again
        assert again.status == "accepted" and not again.duplicate, again
    finally:
        await engine.close()
        await redis.aclose()


async def test_a_paper_fill_whose_write_failed_is_not_lost(redis_server: RedisServer) -> None:
    """The paper broker books a fill in memory before writing it; when the write fails
    (Redis restarting) the fill is never reported and the order hangs in ``submitted``
    until the datahub restarts. Seen in ``make chaos`` as an order never terminal.
    (A resting limit order: it fills on a later quote, through the broker's own write.)"""
    redis = create_redis(redis_server.url, timeout=0.5)
    ask = 100.01

    async def quote(symbol: str) -> Quote:
        return Quote(symbol=symbol, time=time.time(), last=ask - 0.01, bid=ask - 0.02, ask=ask)

    broker = PaperBroker(redis, quote)
    engine = ExecutionEngine(
        ExecutionStore(redis), broker, RiskEngine(market_hours="always"), quote
    )
    await engine.start()
    real_save = broker.save_record
    failed: list[str] = []

    async def flaky_save(record: dict[str, Any]) -> None:
        if record["status"] == "filled" and not failed:
            failed.append(record["order"]["id"])
            raise RedisError("connection lost (simulated Redis restart)")
        await real_save(record)

    broker.save_record = flaky_save  # type: ignore[method-assign]
    try:
        decision = await engine.handle_alert(
            Alert(
                ticker="AAPL",
                action=AlertAction.BUY,
                quantity=1,
                order_type=OrderType.LIMIT,
                price=99.5,
                alert_id="paper-fill",
            )
        )
        assert decision.order_id
        await asyncio.sleep(0.1)
        stored = await engine.store.get_order(decision.order_id)
        assert stored is not None and stored.status.value == "submitted", stored  # resting
        ask = 99.4  # the market comes down through the limit
        with pytest.raises(RedisError):
            await engine.on_quote(await quote("AAPL"))
        assert failed == [decision.order_id]
        for _ in range(50):  # Redis is back: quotes keep coming
            await engine.on_quote(await quote("AAPL"))
            stored = await engine.store.get_order(decision.order_id)
            if stored is not None and stored.status.value == "filled":
                break
            await asyncio.sleep(0.02)
        stored = await engine.store.get_order(decision.order_id)
        assert stored is not None and stored.status.value == "filled", stored
        assert engine.book.position("AAPL") == 1
    finally:
        await engine.close()
        await redis.aclose()


@pytest.mark.parametrize("fault", [fails, reply_lost], ids=["write-failed", "reply-lost"])
async def test_a_paper_order_whose_write_failed_or_was_not_acknowledged_is_filled_once(
    redis_server: RedisServer, fault: Any
) -> None:
    """A market order fills as the paper broker takes it, in one write (HSETNX). Either
    that write never reaches Redis (restarting), or it does and its reply is lost: the
    submit fails and the order stays ``new`` here, the broker holding nothing or holding
    it filled. The watcher must send it again or book the broker's fill, once, not leave
    it ``new`` forever (the second was seen in the long ``make chaos`` run as "1 orders
    not terminal")."""
    redis = create_redis(redis_server.url, timeout=0.5)

    async def quote(symbol: str) -> Quote:
        return Quote(symbol=symbol, time=time.time(), last=100.0, bid=99.99, ask=100.01)

    engine = ExecutionEngine(
        ExecutionStore(redis),
        PaperBroker(redis, quote),
        RiskEngine(market_hours="always"),
        quote,
        broker_timeout=0.2,  # "accepted but never sent" is judged after 2 x this
    )
    await engine.start()
    hit = Lost()
    broker = engine.broker
    broker.create_record = fault(broker.create_record, log=hit)  # type: ignore[attr-defined]
    try:
        decision = await engine.handle_alert(
            Alert(ticker="AAPL", action=AlertAction.BUY, quantity=3, alert_id="first-write")
        )
        assert decision.status == "accepted" and decision.order_id
        await asyncio.sleep(0.1)
        assert [key for key, _ in hit.hits] == [decision.order_id]
        stored = await engine.store.get_order(decision.order_id)
        assert stored is not None and stored.status.value == "new", stored
        for _ in range(100):  # the watcher looks every 5 s
            stored = await engine.store.get_order(decision.order_id)
            if stored is not None and stored.status.value == "filled":
                break
            await asyncio.sleep(0.1)
        assert stored is not None and stored.status.value == "filled", stored
        assert engine.book.position("AAPL") == 3
        assert [f.quantity for f in await engine.store.fills()] == [3]
    finally:
        await engine.close()
        await redis.aclose()
