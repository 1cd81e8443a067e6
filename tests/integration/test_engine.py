"""The execution engine with the paper broker on a real Redis, driven quote by quote."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.brokers.base import BrokerEvent
from app.brokers.paper import PaperBroker
from app.bus import Keys
from app.datahub.marks import FillMarks
from app.execution.decisions import MAX_HOLD_SECONDS, RetryLaterError
from app.execution.engine import ExecutionEngine
from app.execution.store import ExecutionStore
from app.models.alerts import Alert, Decision
from app.models.market import Quote
from app.models.orders import Fill, Order, OrderStatus
from app.models.portfolio import AccountState, Position
from app.risk.engine import RiskEngine
from app.risk.limits import parse_limits
from tests.faults import Lost, down_while, fails, reply_lost
from tests.support.limits import PERMISSIVE

LIMITS = PERMISSIVE


class Tape:
    """The quotes the broker and engine see; tests move the market by hand."""

    def __init__(self) -> None:
        self.quotes: dict[str, Quote] = {}

    def set(self, symbol: str, last: float) -> Quote:
        q = Quote(
            symbol=symbol,
            time=time.time(),
            last=last,
            bid=round(last - 0.01, 2),
            ask=round(last + 0.01, 2),
        )
        self.quotes[symbol] = q
        return q

    async def get(self, symbol: str) -> Quote | None:
        return self.quotes.get(symbol)


def make_engine(redis: Redis, tape: Tape) -> ExecutionEngine:
    broker = PaperBroker(redis, tape.get, slippage_bps=0)
    return ExecutionEngine(
        ExecutionStore(redis),
        broker,
        RiskEngine(parse_limits(LIMITS), market_hours="always"),
        tape.get,
    )


@pytest.fixture
async def engine(redis: Redis) -> AsyncIterator[tuple[ExecutionEngine, Tape]]:
    tape = Tape()
    tape.set("AAPL", 100.0)
    eng = make_engine(redis, tape)
    await eng.start()
    yield eng, tape
    await eng.close()


async def settle(eng: ExecutionEngine) -> None:
    for _ in range(200):
        if not eng.tasks:
            return
        await __import__("asyncio").sleep(0.01)


async def test_bracket_take_profit_closes_the_position(
    engine: tuple[ExecutionEngine, Tape],
) -> None:
    eng, tape = engine
    d = await eng.handle_alert(
        Alert(
            ticker="AAPL", action="buy", quantity=10, stop_loss=95, take_profit=110, alert_id="b1"
        )
    )
    assert d.status == "accepted"
    await settle(eng)
    assert eng.book.position("AAPL") == 10
    await eng.on_quote(tape.set("AAPL", 105.0))  # inside the bracket: nothing happens
    await settle(eng)
    assert eng.book.position("AAPL") == 10
    await eng.on_quote(tape.set("AAPL", 110.5))  # target hit
    await settle(eng)
    assert eng.book.position("AAPL") == 0
    assert eng.book.realized_today == pytest.approx(10 * (110.49 - 100.01))


async def test_bracket_stop_loss_on_a_short(engine: tuple[ExecutionEngine, Tape]) -> None:
    eng, tape = engine
    await eng.handle_alert(
        Alert(ticker="AAPL", action="sell", quantity=5, stop_loss=103, alert_id="b2")
    )
    await settle(eng)
    assert eng.book.position("AAPL") == -5
    await eng.on_quote(tape.set("AAPL", 103.5))
    await settle(eng)
    assert eng.book.position("AAPL") == 0


async def test_a_bracket_survives_a_takeover_of_the_account(redis: Redis) -> None:
    """The engine that takes the account over (or a restart) keeps managing the stop of a
    filled entry, and an exit already placed is not placed again."""
    tape = Tape()
    tape.set("AAPL", 100.0)
    tape.set("MSFT", 60.0)
    first = make_engine(redis, tape)
    await first.start()
    await first.handle_alert(
        Alert(ticker="AAPL", action="buy", quantity=4, stop_loss=95, alert_id="keep-stop")
    )
    await first.handle_alert(  # a second entry whose stop has fired already
        Alert(ticker="MSFT", action="buy", quantity=2, stop_loss=50, alert_id="fired")
    )
    await settle(first)
    await first.on_quote(tape.set("MSFT", 49.0))
    await settle(first)
    assert first.book.position("MSFT") == 0
    await first.close()

    second = make_engine(redis, tape)
    await second.start()
    try:
        assert [b.symbol for b in second.brackets.open.values()] == ["AAPL"]
        await second.on_quote(tape.set("AAPL", 94.0))  # the stop, managed by the new engine
        await settle(second)
        assert second.book.position("AAPL") == 0
    finally:
        await second.close()


async def test_resting_limit_fills_when_the_market_crosses(
    engine: tuple[ExecutionEngine, Tape],
) -> None:
    eng, tape = engine
    d = await eng.handle_alert(
        Alert(ticker="AAPL", action="buy", quantity=3, order_type="limit", price=98, alert_id="l1")
    )
    await settle(eng)
    order = await eng.store.get_order(d.order_id or "")
    assert order is not None and order.status is OrderStatus.SUBMITTED
    await eng.on_quote(tape.set("AAPL", 97.5))
    await settle(eng)
    order = await eng.store.get_order(d.order_id or "")
    assert (
        order is not None and order.status is OrderStatus.FILLED and order.avg_fill_price == 97.51
    )


async def test_streams_hold_every_transition_and_each_fill_once(
    engine: tuple[ExecutionEngine, Tape], redis: Redis
) -> None:
    """A market order fills as the paper broker takes it (one write there, one script
    here); the orders stream must still read new -> submitted -> filled, the fills stream
    carry the fill once, and the open-orders index be empty again. The journal and the
    console read these streams."""
    eng, _ = engine
    d = await eng.handle_alert(Alert(ticker="AAPL", action="buy", quantity=2, alert_id="s1"))
    await settle(eng)
    orders = [
        Order.model_validate_json(fields[b"order"])
        for _, fields in await redis.xrange(Keys.ORDERS_STREAM)
    ]
    assert [(o.id, o.status) for o in orders] == [
        (d.order_id, OrderStatus.NEW),
        (d.order_id, OrderStatus.SUBMITTED),
        (d.order_id, OrderStatus.FILLED),
    ]
    assert orders[1].broker_order_id and orders[1].broker_order_id == orders[2].broker_order_id
    fills = await eng.store.fills()
    assert [(f.order_id, f.quantity) for f in fills] == [(d.order_id, 2)]
    keys = Keys.account("default")
    assert await redis.sismember(keys.fills_seen, fills[0].id)
    assert not await redis.smembers(keys.open_orders)
    assert await redis.zscore(keys.recent_orders, d.order_id or "") == orders[0].created_at
    decision = await eng.store.alert_decision("s1")
    assert isinstance(decision, Decision) and decision.order_id == d.order_id
    ledger = await eng.store.load_book()
    assert ledger is not None and ledger.position("AAPL") == 2


async def test_an_accepted_order_that_never_reached_the_broker_is_sent_after_a_restart(
    redis: Redis,
) -> None:
    tape = Tape()
    tape.set("AAPL", 100.0)
    eng = make_engine(redis, tape)
    await eng.start()
    eng.spawn = lambda coro: coro.close()  # type: ignore[method-assign,assignment]  # crash before the broker call
    d = await eng.handle_alert(Alert(ticker="AAPL", action="buy", quantity=4, alert_id="r1"))
    assert d.status == "accepted"
    assert eng.book.position("AAPL") == 0
    await eng.close()  # the "crashed" process: its watcher must not send the order itself
    again = make_engine(redis, tape)  # the restarted process
    await again.start()
    await settle(again)
    assert again.book.position("AAPL") == 4
    # and restarting once more does not send it twice
    third = make_engine(redis, tape)
    await third.start()
    await settle(third)
    assert third.book.position("AAPL") == 4
    assert await redis.xlen("traderops:stream:fills") == 1
    await again.close()
    await third.close()


async def test_daily_loss_limit_blocks_new_risk_but_not_exits(redis: Redis) -> None:
    tape = Tape()
    tape.set("AAPL", 100.0)
    limits = parse_limits({**LIMITS, "daily_loss": {"max_loss": 50}, "circuit_breaker": None})
    eng = ExecutionEngine(
        ExecutionStore(redis),
        PaperBroker(redis, tape.get, slippage_bps=0),
        RiskEngine(limits, market_hours="always"),
        tape.get,
    )
    await eng.start()
    await eng.handle_alert(Alert(ticker="AAPL", action="buy", quantity=10, alert_id="dl1"))
    await settle(eng)
    await eng.on_quote(tape.set("AAPL", 90.0))  # 100 $ down, past the 50 $ limit
    denied = await eng.handle_alert(Alert(ticker="AAPL", action="buy", quantity=1, alert_id="dl2"))
    assert denied.status == "denied" and denied.check == "daily_loss"
    exit_ = await eng.handle_alert(Alert(ticker="AAPL", action="exit", alert_id="dl3"))
    assert exit_.status == "accepted"
    await settle(eng)
    assert eng.book.position("AAPL") == 0
    await eng.close()


class BookKeepingBroker(PaperBroker):
    """A paper broker that also reports its own book, as Tradier does."""

    keeps_book = True

    def __init__(self, redis: Redis, tape: Tape, positions: list[Position], cash: float) -> None:
        super().__init__(redis, tape.get, slippage_bps=0, account="live")
        self._positions, self._cash = positions, cash

    async def positions(self) -> list[Position]:
        return self._positions

    async def balances(self) -> AccountState:
        return AccountState(
            account="live", cash=self._cash, equity=self._cash, buying_power=self._cash
        )


async def test_start_up_adopts_the_brokers_positions_and_cash(redis: Redis) -> None:
    tape = Tape()
    tape.set("MSFT", 400.0)
    broker = BookKeepingBroker(
        redis, tape, [Position(symbol="MSFT", quantity=7, avg_price=380.0)], cash=50_000.0
    )
    eng = ExecutionEngine(
        ExecutionStore(redis),
        broker,
        RiskEngine(parse_limits(LIMITS), market_hours="always"),
        tape.get,
    )
    await eng.start()
    assert eng.book.position("MSFT") == 7 and eng.book.cash == 50_000.0
    decision = await eng.handle_alert(Alert(ticker="MSFT", action="exit", alert_id="adopt-1"))
    assert decision.quantity == 7  # sized against the adopted book
    await eng.close()


async def test_a_book_keeping_brokers_day_starts_from_its_equity_at_the_open(
    redis: Redis,
) -> None:
    """First seen: the day starts from the broker's equity, not a default; at the next
    session start the new day's budget is measured from the broker's equity again."""
    tape = Tape()
    broker = BookKeepingBroker(redis, tape, [], cash=60_000.0)
    now = [time.time()]
    risk = RiskEngine(parse_limits(LIMITS), clock=lambda: now[0], market_hours="always")
    eng = ExecutionEngine(ExecutionStore(redis), broker, risk, tape.get, clock=lambda: now[0])
    await eng.start()
    try:
        assert eng.book.day_start_equity == 60_000.0 and eng.book.daily_pnl == 0.0
        broker._cash = 61_500.0  # overnight interest, a deposit: the broker's figure counts
        now[0] = risk.next_reset + 60  # the next session's open
        day = eng.risk_snapshot()["daily"]["day"]
        await settle(eng)
        assert day == risk.trading_day(now[0]) != risk.trading_day(now[0] - 86_400 * 4)
        assert eng.book.day_start_equity == 61_500.0
        assert risk.book.day_start_equity == 61_500.0
        stored = await eng.store.load_book()
        assert stored is not None and stored.day_start_equity == 61_500.0
    finally:
        await eng.close()


async def test_marks_come_from_the_symbol_index_and_older_fills_are_indexed_at_start(
    redis: Redis,
) -> None:
    """Chart marks read a per-symbol index by time, not the whole fills stream. Fills booked
    before the index existed (only in the stream) are indexed once when the engine starts."""
    old = Fill(
        id="old-1",
        order_id="o-old",
        broker="paper",
        account="paper",
        symbol="MSFT",
        intent="sell_short",
        quantity=4,
        price=410.0,
        time=1_700_000_000.0,
    )
    await redis.xadd(Keys.FILLS_STREAM, {"fill": old.model_dump_json()})  # as an older release
    tape = Tape()
    tape.set("AAPL", 100.0)
    eng = make_engine(redis, tape)
    await eng.start()
    try:
        assert [
            m["id"] for m in await FillMarks(redis).marks("MSFT", 1_699_999_000, 1_700_001_000)
        ] == ["old-1"]
        assert (
            await FillMarks(redis).marks("MSFT", 1_700_000_001, 1_700_001_000) == []
        )  # to the second
        assert await FillMarks(redis).marks("AAPL", 0, 2_000_000_000) == []
        d = await eng.handle_alert(Alert(ticker="AAPL", action="buy", quantity=2, alert_id="m1"))
        await settle(eng)
        now = int(time.time())
        marks = await FillMarks(redis).marks("AAPL", now - 60, now + 60)
        assert [(m["label"], m["color"]) for m in marks] == [("B", "green")]
        assert "buy 2 @" in marks[0]["text"] and d.order_id
        assert await FillMarks(redis).marks("AAPL", now + 60, now + 120) == []  # `to` is exclusive
    finally:
        await eng.close()
    again = make_engine(redis, tape)  # a restart does not index twice
    assert await again.store.index_fills() == 0


async def test_an_alert_left_claimed_by_a_dead_engine_is_decided_once_its_heartbeat_lapses(
    redis: Redis,
) -> None:
    """Engine A claimed the alert and died before deciding. While A's heartbeat lives,
    a copy at engine B answers in_progress; once it lapses, B decides the alert, once."""
    tape = Tape()
    tape.set("AAPL", 100.0)
    a, b = make_engine(redis, tape), make_engine(redis, tape)
    await a.start()
    await b.start()
    try:
        assert await a.store.claim_alert("orphan", f"{a.instance}:t1")  # ...and then A dies
        alert = Alert(ticker="AAPL", action="buy", quantity=1, alert_id="orphan")
        waiting = await b.handle_alert(alert)
        assert (waiting.status, waiting.reason) == ("denied", "in_progress")
        assert a.heartbeat_task is not None
        a.heartbeat_task.cancel()
        await redis.delete(Keys.instance(a.instance))  # A's heartbeat key expires
        decided = await b.handle_alert(alert)
        assert decided.status == "accepted" and not decided.duplicate, decided
        again = await b.handle_alert(alert)
        assert again.duplicate and again.order_id == decided.order_id
        await settle(b)
        assert await redis.xlen(Keys.FILLS_STREAM) == 1
    finally:
        await a.close()
        await b.close()


async def test_a_decision_whose_claim_was_taken_over_is_not_written(redis: Redis) -> None:
    """Fencing: engine A stalls between claiming and storing its decision, long enough for
    its heartbeat to lapse and B to take the alert over. A's write must be refused, its
    in-memory order dropped, and A must answer with B's decision: one order in all."""
    tape = Tape()
    tape.set("AAPL", 100.0)
    b = make_engine(redis, tape)

    class StallsBeforeSaving(ExecutionStore):
        async def save_alert(self, orders: list[Order], decision: Decision, **kw: Any) -> bool:
            await redis.delete(Keys.instance(a.instance))  # A looks dead to the others...
            taken = await b.handle_alert(
                Alert(ticker="AAPL", action="buy", quantity=5, alert_id="x")
            )
            assert taken.status == "accepted" and not taken.duplicate
            return await super().save_alert(orders, decision, **kw)  # ...then A resumes

    a = ExecutionEngine(
        StallsBeforeSaving(redis),
        PaperBroker(redis, tape.get, slippage_bps=0),
        RiskEngine(parse_limits(LIMITS), market_hours="always"),
        tape.get,
    )
    await a.start()
    await b.start()
    try:
        answer = await a.handle_alert(Alert(ticker="AAPL", action="buy", quantity=5, alert_id="x"))
        assert answer.status == "accepted" and answer.duplicate, answer  # B's decision
        assert not a.orders and not a.tasks  # nothing placed by A
        await settle(b)
        orders = [
            Order.model_validate_json(fields[b"order"])
            for _, fields in await redis.xrange(Keys.ORDERS_STREAM)
        ]
        assert [o.status for o in orders if o.id == answer.order_id] == [
            OrderStatus.NEW,
            OrderStatus.SUBMITTED,
            OrderStatus.FILLED,
        ]
        assert b.book.position("AAPL") == 5 and a.book.position("AAPL") == 0
    finally:
        await a.close()
        await b.close()


# -- writes whose reply was lost (Redis went away after executing them) ---------------------
async def test_a_paper_write_retried_after_its_reply_was_lost_still_reports_the_fill(
    redis: Redis,
) -> None:
    """redis-py retries a command whose reply was lost: the paper broker's HSETNX then
    answers 0 for the broker's own record. The fill in it must still be reported."""
    tape = Tape()
    tape.set("AAPL", 100.0)
    eng = make_engine(redis, tape)
    real = eng.broker.create_record  # type: ignore[attr-defined]

    async def retried(key: str, value: bytes) -> bool:
        await real(key, value)  # the first try lands; its reply is lost
        return bool(await real(key, value))  # redis-py's retry finds the record: 0

    eng.broker.create_record = retried  # type: ignore[attr-defined]
    await eng.start()
    try:
        d = await eng.handle_alert(Alert(ticker="AAPL", action="buy", quantity=3, alert_id="r1"))
        await settle(eng)
        order = await eng.store.get_order(d.order_id or "")
        assert order is not None and order.status is OrderStatus.FILLED, order
        assert eng.book.position("AAPL") == 3
    finally:
        await eng.close()


async def test_a_fill_that_could_not_be_stored_is_undone_then_reconciled_once(
    redis: Redis,
) -> None:
    """The fill's write fails: memory must not keep it (the next fill would store it in its
    ledger, and a restart would replay it again). The watcher books it once later."""
    tape = Tape()
    tape.set("AAPL", 100.0)
    eng = make_engine(redis, tape)
    failed = Lost()
    eng.store.save_fills = fails(eng.store.save_fills, log=failed)  # type: ignore[method-assign]
    await eng.start()
    try:
        d = await eng.handle_alert(Alert(ticker="AAPL", action="buy", quantity=4, alert_id="u1"))
        await settle(eng)
        assert failed.hits and eng.book.position("AAPL") == 0  # undone in memory
        order = eng.orders[d.order_id or ""]
        assert order.status is OrderStatus.NEW and order.filled_quantity == 0
        await eng.reconciler.reconcile_order(order)  # what the watcher does on its next round
        assert eng.book.position("AAPL") == 4
        stored = await eng.store.get_order(d.order_id or "")
        assert stored is not None and stored.status is OrderStatus.FILLED
    finally:
        await eng.close()
    again = make_engine(redis, tape)  # a restart replays nothing twice
    await again.start()
    try:
        assert again.book.position("AAPL") == 4
        assert len(await again.store.fills()) == 1
    finally:
        await again.close()


async def test_an_alert_whose_write_reply_was_lost_is_answered_from_the_stored_decision(
    redis: Redis,
) -> None:
    """The alert's write lands but its reply is lost: the engine reads the stored decision
    back, answers accepted and sends the order (once)."""
    tape = Tape()
    tape.set("AAPL", 100.0)
    eng = make_engine(redis, tape)
    eng.store.save_alert = reply_lost(eng.store.save_alert)  # type: ignore[method-assign]
    await eng.start()
    try:
        d = await eng.handle_alert(Alert(ticker="AAPL", action="buy", quantity=2, alert_id="w1"))
        assert d.status == "accepted" and not d.duplicate
        await settle(eng)
        assert eng.book.position("AAPL") == 2 and len(await eng.store.fills()) == 1
    finally:
        await eng.close()


@asynccontextmanager
async def held_alert(
    redis: Redis, alert_id: str
) -> AsyncIterator[tuple[ExecutionEngine, list[bool]]]:
    """A started engine holding ``alert_id`` (buy 2 AAPL): its write landed, but the reply
    was lost and the read-back failed. ``down[0] = False`` lets Redis answer again."""
    tape = Tape()
    tape.set("AAPL", 100.0)
    eng = make_engine(redis, tape)
    down = [True]
    eng.store.save_alert = reply_lost(eng.store.save_alert)  # type: ignore[method-assign]
    eng.store.decision_is = down_while(eng.store.decision_is, down)  # type: ignore[method-assign]
    await eng.start()
    try:
        with pytest.raises(RetryLaterError):
            await eng.handle_alert(held(alert_id))
        yield eng, down
    finally:
        await eng.close()


def held(alert_id: str) -> Alert:
    return Alert(ticker="AAPL", action="buy", quantity=2, alert_id=alert_id)


async def test_an_alert_whose_write_outcome_is_unknown_is_held_then_resolved(
    redis: Redis,
) -> None:
    """Write and read-back both fail: the engine cannot know whether the alert was placed,
    so it answers "retry later" and holds the order unsent. Once Redis answers, the stored
    decision says it was placed: the order is sent, and the retry gets that decision."""
    async with held_alert(redis, "w2") as (eng, down):
        await settle(eng)
        assert eng.book.position("AAPL") == 0 and eng.orders  # held, not sent
        assert REGISTRY.get_sample_value("traderops_execution_unresolved") == 1  # alerting
        down[0] = False
        again = await eng.handle_alert(held("w2"))
        assert again.status == "accepted" and again.duplicate
        await settle(eng)
        assert eng.book.position("AAPL") == 2 and len(await eng.store.fills()) == 1
        await eng.reconciler.watch_once()
        assert REGISTRY.get_sample_value("traderops_execution_unresolved") == 0


async def test_a_held_alert_resolved_by_the_watcher_and_a_retry_at_once_is_sent_once(
    redis: Redis,
) -> None:
    """The watcher and a retried copy resolve the same held alert at the same moment, and
    the watcher's stale-order sweep runs in the same round: the order goes out once."""
    tape = Tape()
    tape.set("AAPL", 100.0)
    eng = make_engine(redis, tape)
    down = [True]
    submits: list[str] = []
    real_submit, real_read = eng.broker.submit, eng.store.decision_is

    async def slow_read(*args: Any, **kw: Any) -> bool:
        await asyncio.sleep(0.01)  # both readers are waiting here together
        return bool(await real_read(*args, **kw))

    async def counting_submit(order: Order) -> str:
        submits.append(order.id)
        await asyncio.sleep(0.05)  # a broker round trip: the sweep runs meanwhile
        return await real_submit(order)

    eng.store.save_alert = reply_lost(eng.store.save_alert, times=99)  # type: ignore[method-assign]
    eng.store.decision_is = down_while(slow_read, down)  # type: ignore[method-assign]
    eng.broker.submit = counting_submit  # type: ignore[method-assign]
    await eng.start()
    try:
        alert = Alert(ticker="AAPL", action="buy", quantity=2, alert_id="held-1")
        with pytest.raises(RetryLaterError):
            await eng.handle_alert(alert)
        for held in eng.orders.values():  # held long enough to look "accepted, never sent"
            held.created_at -= 3600
        down[0] = False
        answer, _ = await asyncio.gather(eng.handle_alert(alert), eng.reconciler.watch_once())
        assert answer.status == "accepted" and answer.duplicate
        await eng.reconciler.watch_once()
        await settle(eng)
        assert submits == [answer.order_id]
        assert eng.book.position("AAPL") == 2 and len(await eng.store.fills()) == 1
    finally:
        await eng.close()


async def test_a_fill_stored_but_whose_reply_was_lost_is_taken_back_from_redis(
    redis: Redis,
) -> None:
    """The fill's write lands, its reply is lost: the engine undoes it in memory (it cannot
    tell), and the watcher takes the order and ledger back from Redis: booked once."""
    tape = Tape()
    tape.set("AAPL", 100.0)
    eng = make_engine(redis, tape)
    lost = Lost()
    eng.store.save_fills = reply_lost(eng.store.save_fills, log=lost)  # type: ignore[method-assign]
    await eng.start()
    try:
        d = await eng.handle_alert(Alert(ticker="AAPL", action="buy", quantity=6, alert_id="l1"))
        await settle(eng)
        assert lost.hits and eng.book.position("AAPL") == 0  # undone: unknown here
        await eng.reconciler.watch_once()
        assert eng.book.position("AAPL") == 6
        assert d.order_id not in eng.orders  # filled: no longer open here either
        stored = await eng.store.get_order(d.order_id or "")
        assert stored is not None and stored.status is OrderStatus.FILLED
        later = await eng.handle_alert(
            Alert(ticker="AAPL", action="buy", quantity=1, alert_id="l2")
        )
        await settle(eng)
        assert later.status == "accepted" and eng.book.position("AAPL") == 7
    finally:
        await eng.close()
    again = make_engine(redis, tape)
    await again.start()
    try:
        assert again.book.position("AAPL") == 7 and len(await again.store.fills()) == 2
    finally:
        await again.close()


async def test_a_held_alert_found_stored_too_late_is_canceled_not_sent(redis: Redis) -> None:
    """Redis answered only after the hold limit: the stored decision stands (a retry gets
    it), but its order is stored canceled with the reason, never sent at a stale price."""
    async with held_alert(redis, "late-1") as (eng, down):
        eng.decider.unresolved["late-1"].now -= MAX_HOLD_SECONDS + 5  # Redis was away that long
        down[0] = False
        again = await eng.handle_alert(held("late-1"))
        assert again.status == "accepted" and again.duplicate
        await settle(eng)
        order = await eng.store.get_order(again.order_id or "")
        assert order is not None and order.status is OrderStatus.CANCELED, order
        assert "not sent" in (order.reason or "")
        assert eng.book.position("AAPL") == 0 and not eng.orders
        assert await eng.broker.find_by_tag(again.order_id or "") is None


async def test_a_fill_reported_twice_is_booked_once(
    engine: tuple[ExecutionEngine, Tape], redis: Redis
) -> None:
    """A broker may report a fill again (a reconciliation replay, Tradier's poller after a
    failed hand-off). The fill's save script refuses a fill id it has booked, and the
    engine undoes what it had applied in memory: position, cash and order unchanged."""
    eng, _ = engine
    d = await eng.handle_alert(
        Alert(
            ticker="AAPL", action="buy", quantity=10, order_type="limit", price=101, alert_id="t1"
        )
    )
    await settle(eng)
    (fill,) = await eng.store.fills()
    cash, order = eng.book.cash, await eng.store.get_order(d.order_id or "")
    assert order is not None and order.status is OrderStatus.FILLED
    await eng.on_broker_event(
        BrokerEvent(fill.order_id, OrderStatus.FILLED, order.broker_order_id, fill=fill)
    )
    assert eng.book.position("AAPL") == 10 and eng.book.cash == cash
    assert await eng.store.get_order(d.order_id or "") == order
    assert len(await eng.store.fills()) == 1


# -- fills that arrive together: booked under one lock, stored in one write ------------------
async def _resting(eng: ExecutionEngine, tape: Tape, symbol: str, qty: int, alert_id: str) -> Order:
    """A buy limit far below the market: it rests at the paper broker, unfilled."""
    tape.set(symbol, 100.0)
    d = await eng.handle_alert(
        Alert(
            ticker=symbol,
            action="buy",
            quantity=qty,
            order_type="limit",
            price=90,
            alert_id=alert_id,
        )
    )
    await settle(eng)
    assert d.status == "accepted" and d.order_id in eng.orders, d
    return eng.orders[d.order_id or ""]


def _fill(order: Order, fill_id: str, qty: int) -> BrokerEvent:
    fill = Fill(
        id=fill_id,
        order_id=order.id,
        broker="paper",
        account="paper",
        symbol=order.request.symbol,
        intent="buy",
        quantity=qty,
        price=90.0,
        time=time.time(),
    )
    status = (
        OrderStatus.FILLED
        if order.filled_quantity + qty >= order.request.quantity
        else (OrderStatus.PARTIALLY_FILLED)
    )
    return BrokerEvent(order.id, status, order.broker_order_id, fill=fill)


async def test_fills_that_arrive_together_are_stored_together_and_a_replay_among_them_is_dropped(
    engine: tuple[ExecutionEngine, Tape],
) -> None:
    """Three fills reported at once, one of them a replay of a fill booked before: the
    batch is refused whole (nothing written), the replay dropped, the other two stored in
    one write; position, cash, orders and the stored ledger agree with the fills."""
    eng, tape = engine
    aapl = await _resting(eng, tape, "AAPL", 10, "b1")
    msft = await _resting(eng, tape, "MSFT", 5, "b2")
    first = _fill(aapl, "x-1", 4)
    await eng.on_broker_event(first)
    cash = eng.book.cash
    sizes: list[int] = []
    real = eng.store.save_fills

    async def counted(fills: Any, ledger: Any) -> list[int]:
        sizes.append(len(fills))
        return await real(fills, ledger)

    eng.store.save_fills = counted  # type: ignore[method-assign]
    await asyncio.gather(
        eng.on_broker_event(first),  # the replay
        eng.on_broker_event(_fill(aapl, "x-2", 6)),
        eng.on_broker_event(_fill(msft, "x-3", 5)),
    )
    assert sizes == [3, 2]  # refused whole for the replay, then the two others at once
    assert eng.book.position("AAPL") == 10 and eng.book.position("MSFT") == 5
    assert eng.book.cash == pytest.approx(cash - 11 * 90.0)
    assert sorted(f.id for f in await eng.store.fills()) == ["x-1", "x-2", "x-3"]
    for order in (aapl, msft):
        stored = await eng.store.get_order(order.id)
        assert stored is not None and stored.status is OrderStatus.FILLED, stored
        assert stored.filled_quantity == order.request.quantity
    ledger = await eng.store.load_book()
    assert ledger is not None and ledger.to_dict() == eng.book.to_dict()


async def test_a_batch_of_fills_whose_write_failed_is_undone_whole(
    engine: tuple[ExecutionEngine, Tape],
) -> None:
    """Two fills of one order and one of another in one batch, the write failing: memory
    goes back exactly to before the batch (newest undone first), every order is left
    for the watcher to reconcile, and each reporter is told of the failure."""
    eng, tape = engine
    aapl = await _resting(eng, tape, "AAPL", 10, "c1")
    msft = await _resting(eng, tape, "MSFT", 5, "c2")
    before = eng.book.to_dict()
    states = [(o.status, o.filled_quantity, o.avg_fill_price) for o in (aapl, msft)]
    failed = Lost()
    eng.store.save_fills = fails(eng.store.save_fills, log=failed)  # type: ignore[method-assign]
    results = await asyncio.gather(
        eng.on_broker_event(_fill(aapl, "y-1", 4)),
        eng.on_broker_event(_fill(aapl, "y-2", 6)),
        eng.on_broker_event(_fill(msft, "y-3", 5)),
        return_exceptions=True,
    )
    assert len(failed.hits) == 1  # one write for the three
    assert all(isinstance(r, RedisError) for r in results), results
    assert eng.book.to_dict() == before
    assert [(o.status, o.filled_quantity, o.avg_fill_price) for o in (aapl, msft)] == states
    assert {aapl.id, msft.id} <= eng.fills.reconcile_later
    assert await eng.store.fills() == []
