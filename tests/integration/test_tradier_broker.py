"""TradierBroker against a local server speaking Tradier's trading API (quirks, faults, 429s)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from redis.asyncio import Redis

from app.brokers.base import Broker, BrokerError, BrokerTimeoutError
from app.brokers.tradier import TradierBroker
from app.config import Settings
from app.execution.engine import ExecutionEngine
from app.execution.store import ExecutionStore
from app.models.alerts import Alert, AlertAction
from app.models.market import Quote
from app.models.orders import (
    Intent,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    TimeInForce,
)
from app.risk.engine import RiskEngine
from tests.fakes.tradier_orders import TradierAccount
from tests.support.poll import until
from tests.support.tradier import (
    ACCOUNT,
    FAST,
    ORDERS,
    POLL,
    Events,
    account,
    broker,
    events,
    make_broker,
)

__all__ = ["account", "broker", "events"]  # fixtures


def order(
    oid: str = "o0123456789abcdef0123",
    *,
    intent: Intent = Intent.BUY,
    quantity: int = 10,
    order_type: OrderType = OrderType.MARKET,
    limit: float | None = None,
    stop: float | None = None,
    tif: TimeInForce = TimeInForce.DAY,
    strategy: str = "trend",
) -> Order:
    request = OrderRequest(
        client_order_id=oid,
        symbol="AAPL",
        intent=intent,
        quantity=quantity,
        order_type=order_type,
        limit_price=limit,
        stop_price=stop,
        time_in_force=tif,
        strategy=strategy,
    )
    now = time.time()
    return Order(
        id=oid, broker="tradier", account=ACCOUNT, request=request, created_at=now, updated_at=now
    )


# -- protocol and settings --------------------------------------------------------------
def test_implements_the_broker_protocol(account: TradierAccount) -> None:
    b = make_broker(account)
    assert isinstance(b, Broker)
    assert b.name == "tradier"
    assert b.account == ACCOUNT
    assert hasattr(b, "fills_for")


def test_from_settings_uses_the_tradier_settings() -> None:
    settings = Settings(
        broker="tradier",
        tradier_token="secret-token",
        tradier_account_id="VA42",
        tradier_base_url="https://sandbox.tradier.com/v1",
        tradier_timeout_seconds=3.5,
        broker_timeout_seconds=2.0,
        _env_file=None,
    )
    b = TradierBroker.from_settings(settings, poll_interval=0.5)
    assert b.account == "VA42"
    assert b.client.base_url == "https://sandbox.tradier.com/v1"
    assert b.client.timeout == 2.0  # one attempt ends before the engine's deadline
    assert b.poller.interval == 0.5
    assert "secret-token" not in repr(b) + repr(b.client)


def test_from_settings_needs_an_account() -> None:
    settings = Settings(tradier_token="t", _env_file=None)
    with pytest.raises(BrokerError, match="ACCOUNT_ID"):
        TradierBroker.from_settings(settings)


# -- placing ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({}, {"side": "buy", "type": "market", "duration": "day"}),
        (
            {
                "intent": Intent.SELL_SHORT,
                "order_type": OrderType.LIMIT,
                "limit": 101.25,
                "tif": TimeInForce.GTC,
            },
            {"side": "sell_short", "type": "limit", "duration": "gtc", "price": "101.25"},
        ),
        (
            {"intent": Intent.SELL, "order_type": OrderType.STOP, "stop": 95.5},
            {"side": "sell", "type": "stop", "duration": "day", "stop": "95.5"},
        ),
        (
            {
                "intent": Intent.BUY_TO_COVER,
                "order_type": OrderType.STOP_LIMIT,
                "limit": 102.0,
                "stop": 101.5,
            },
            {
                "side": "buy_to_cover",
                "type": "stop_limit",
                "duration": "day",
                "price": "102.0",
                "stop": "101.5",
            },
        ),
    ],
)
async def test_submit_posts_tradiers_form_with_our_id_as_tag(
    account: TradierAccount, broker: TradierBroker, kw: dict[str, Any], expected: dict[str, str]
) -> None:
    o = order(**kw)
    broker_id = await broker.submit(o)
    assert account.forms == [
        {
            "class": "equity",
            "symbol": "AAPL",
            "quantity": "10",
            "tag": o.id,
            **expected,
        }
    ]
    placed = account.by_tag(o.id)
    assert broker_id == str(placed["id"])
    call = account.fake.calls(ORDERS, "POST")[0]
    assert call.headers["Accept"] == "application/json"
    assert call.headers["Authorization"] == f"Bearer {account.fake.token}"


async def test_an_invalid_tag_is_refused_before_sending(
    account: TradierAccount, broker: TradierBroker
) -> None:
    with pytest.raises(BrokerError, match="tag"):
        await broker.submit(order("bad_id!"))
    assert account.posts() == 0


async def test_one_refusal_is_a_broker_error_with_tradiers_message(
    account: TradierAccount, broker: TradierBroker
) -> None:
    account.reject_next = [["Backoffice rejected override of the order."]]
    with pytest.raises(BrokerError) as err:
        await broker.submit(order())
    assert not isinstance(err.value, BrokerTimeoutError)
    assert err.value.retryable is False
    assert "Backoffice rejected override of the order." in str(err.value)
    assert account.posts() == 1 and not account.orders


async def test_several_refusals_are_all_reported(
    account: TradierAccount, broker: TradierBroker
) -> None:
    account.reject_next = [["Not enough buying power", "Symbol is halted"]]
    with pytest.raises(BrokerError) as err:
        await broker.submit(order())
    assert not isinstance(err.value, BrokerTimeoutError)
    assert "Not enough buying power" in str(err.value)
    assert "Symbol is halted" in str(err.value)
    assert account.posts() == 1


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_a_server_error_on_place_is_unknown_and_never_resent(
    account: TradierAccount, broker: TradierBroker, status: int
) -> None:
    account.fake.fail(ORDERS, status, times=5, method="POST")
    with pytest.raises(BrokerTimeoutError, match="reconcile by tag"):
        await broker.submit(order())
    assert account.posts() == 1


async def test_a_slow_place_times_out_as_unknown_without_a_second_post(
    account: TradierAccount,
) -> None:
    b = make_broker(account, timeout=0.3)
    await b.start(Events())
    try:
        # Tradier takes the order but answers after our timeout.
        account.fake.fail(ORDERS, None, delay=0.8, method="POST")
        o = order()
        with pytest.raises(BrokerTimeoutError):
            await b.submit(o)
        assert account.posts() == 1
        await until(lambda: bool(account.orders))
        state = await b.find_by_tag(o.id)  # reconciliation finds it: nothing to resend
        assert state is not None and state.status is OrderStatus.SUBMITTED
        assert account.posts() == 1
    finally:
        await b.close()


async def test_an_unanswered_place_is_found_by_tag_while_polling(
    account: TradierAccount, events: Events
) -> None:
    b = make_broker(account, timeout=0.3)
    await b.start(events)
    try:
        account.fake.fail(ORDERS, None, delay=0.6, method="POST")
        o = order(quantity=4)
        with pytest.raises(BrokerTimeoutError):
            await b.submit(o)
        await until(lambda: OrderStatus.SUBMITTED in events.statuses)
        placed = account.by_tag(o.id)
        assert events.items[0].broker_order_id == str(placed["id"])
        account.fill(placed["id"], 4, 33.0)
        await until(lambda: len(events.fills) == 1)
        assert events.fills[0].id == f"{placed['id']}-4" and events.fills[0].strategy == "trend"
        assert account.posts() == 1 and not b.poller.pending
    finally:
        await b.close()


async def test_an_unanswered_place_tradier_never_took_is_given_up_on(
    account: TradierAccount, events: Events
) -> None:
    b = TradierBroker(
        account.fake.token,
        ACCOUNT,
        account.fake.base_url,
        retry=FAST,
        poll_interval=POLL,
        pending_ttl=0.1,
    )
    await b.start(events)
    try:
        account.fake.fail(ORDERS, 503, method="POST")
        with pytest.raises(BrokerTimeoutError):
            await b.submit(order())
        assert b.poller.pending
        await until(lambda: not b.poller.pending)
        polled = len(account.fake.calls(ORDERS, "GET"))
        await asyncio.sleep(POLL * 5)
        assert len(account.fake.calls(ORDERS, "GET")) == polled
        assert events.items == [] and account.posts() == 1
    finally:
        await b.close()


async def test_a_dropped_connection_on_place_is_unknown(account: TradierAccount) -> None:
    b = make_broker(account)
    await account.fake.close()  # nobody listens any more
    try:
        with pytest.raises(BrokerTimeoutError):
            await b.submit(order())
    finally:
        await b.close()


async def test_a_429_on_place_is_retried_because_nothing_was_accepted(
    account: TradierAccount, broker: TradierBroker
) -> None:
    account.fake.fail(ORDERS, 429, method="POST", headers={"Retry-After": "0"}, body="Quota")
    broker_id = await broker.submit(order())
    assert account.posts() == 2
    assert list(account.orders) == [int(broker_id)]


async def test_a_429_that_persists_is_a_retryable_refusal(
    account: TradierAccount, broker: TradierBroker
) -> None:
    account.fake.fail(ORDERS, 429, times=10, method="POST", headers={"Retry-After": "0"})
    with pytest.raises(BrokerError) as err:
        await broker.submit(order())
    assert not isinstance(err.value, BrokerTimeoutError)
    assert err.value.retryable is True
    assert account.posts() == FAST.attempts and not account.orders


async def test_preview_places_nothing(account: TradierAccount, broker: TradierBroker) -> None:
    o = order(order_type=OrderType.LIMIT, limit=100.0)
    preview = await broker.preview(o)
    assert preview["status"] == "ok" and preview["result"] is True
    assert preview["order_cost"] == 1000.0
    assert account.forms[0]["preview"] == "true" and account.forms[0]["tag"] == o.id
    assert not account.orders


async def test_preview_refusal(account: TradierAccount, broker: TradierBroker) -> None:
    account.reject_next = [["Invalid symbol"]]
    with pytest.raises(BrokerError, match="Invalid symbol"):
        await broker.preview(order())


# -- cancel -----------------------------------------------------------------------------
async def test_cancel_deletes_the_order_and_the_poller_reports_it(
    account: TradierAccount, broker: TradierBroker, events: Events
) -> None:
    o = order()
    o.broker_order_id = await broker.submit(o)
    await broker.cancel(o)
    assert [r.method for r in account.fake.calls(f"{ORDERS}/{o.broker_order_id}")] == ["DELETE"]
    assert account.orders[int(o.broker_order_id)]["status"] == "canceled"
    await until(lambda: OrderStatus.CANCELED in events.statuses)
    assert events.items[-1].order_id == o.id
    assert not broker.poller.tracked


async def test_cancel_without_a_broker_id_finds_it_by_tag(
    account: TradierAccount, broker: TradierBroker
) -> None:
    placed = account.add_order(tag="o-elsewhere", quantity=5.0)
    await broker.cancel(order("o-elsewhere"))
    assert placed["status"] == "canceled"


async def test_cancel_of_a_filled_order_is_refused_with_the_reason(
    account: TradierAccount, broker: TradierBroker
) -> None:
    o = order()
    o.broker_order_id = await broker.submit(o)
    account.fill(int(o.broker_order_id), 10, 100.0)
    with pytest.raises(BrokerError, match="is filled"):
        await broker.cancel(o)


async def test_cancel_of_an_order_tradier_never_had(broker: TradierBroker) -> None:
    with pytest.raises(BrokerError, match="not known"):
        await broker.cancel(order())


# -- find_by_tag ------------------------------------------------------------------------
async def test_find_by_tag_with_no_orders_at_all(
    account: TradierAccount, broker: TradierBroker
) -> None:
    assert await broker.find_by_tag("o-missing") is None  # {"orders": "null"}
    assert account.fake.calls(ORDERS)[-1].query["includeTags"] == "true"


async def test_find_by_tag_with_a_single_order_object(
    account: TradierAccount, broker: TradierBroker
) -> None:
    placed = account.add_order(tag="o-one", quantity=20.0)
    account.fill(placed["id"], 5, 99.5)
    state = await broker.find_by_tag("o-one")
    assert state is not None
    assert state.order_id == "o-one"
    assert state.broker_order_id == str(placed["id"])
    assert state.status is OrderStatus.PARTIALLY_FILLED
    assert state.filled_quantity == 5
    assert state.avg_fill_price == 99.5
    assert await broker.find_by_tag("o-other") is None


async def test_find_by_tag_among_many(account: TradierAccount, broker: TradierBroker) -> None:
    account.add_order(tag="o-a", status="filled", exec_quantity=1.0, avg_fill_price=10.0)
    account.add_order(tag="o-b", status="rejected")
    account.add_order()  # untagged: placed by hand in Tradier's UI
    state = await broker.find_by_tag("o-b")
    assert state is not None and state.status is OrderStatus.REJECTED
    filled = await broker.find_by_tag("o-a")
    assert filled is not None and filled.status is OrderStatus.FILLED
    assert filled.filled_quantity == 1
    assert await broker.find_by_tag("o-c") is None


async def test_a_failed_lookup_raises_rather_than_saying_never_placed(
    account: TradierAccount, broker: TradierBroker
) -> None:
    account.fake.fail(ORDERS, 500, times=10, method="GET")
    with pytest.raises(BrokerError) as err:
        await broker.find_by_tag("o-x")
    assert err.value.retryable is True


# -- fills by polling -------------------------------------------------------------------
async def test_polling_reports_partial_then_full_fills_once_each(
    account: TradierAccount, broker: TradierBroker, events: Events
) -> None:
    o = order(quantity=100, strategy="trend")
    bid = await broker.submit(o)
    await until(lambda: OrderStatus.SUBMITTED in events.statuses)
    account.fill(int(bid), 30, 10.0)
    await until(lambda: len(events.fills) == 1)
    account.fill(int(bid), 70, 10.5)
    await until(lambda: len(events.fills) == 2)
    await asyncio.sleep(POLL * 5)  # more polls: nothing new to say
    assert events.statuses == [
        OrderStatus.SUBMITTED,
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.FILLED,
    ]
    first, second = events.fills
    assert (first.id, first.quantity, first.price) == (f"{bid}-30", 30, 10.0)
    assert (second.id, second.quantity, second.price) == (f"{bid}-100", 70, 10.5)
    for fill in (first, second):
        assert fill.order_id == o.id
        assert fill.broker == "tradier" and fill.account == ACCOUNT
        assert fill.symbol == "AAPL" and fill.intent is Intent.BUY
        assert fill.strategy == "trend"
    assert all(e.order_id == o.id and e.broker_order_id == bid for e in events.items)
    assert not broker.poller.tracked
    polled = len(account.fake.calls(ORDERS, "GET"))
    await asyncio.sleep(POLL * 5)
    assert len(account.fake.calls(ORDERS, "GET")) == polled  # nothing open: no polling


async def test_repeated_polls_of_the_same_state_say_nothing_new(
    account: TradierAccount, events: Events
) -> None:
    b = make_broker(account)
    b.poller.on_event = events  # no background poller: poll by hand
    try:
        bid = await b.submit(order(quantity=50))
        account.fill(int(bid), 20, 5.0)
        for _ in range(3):
            await b.poller.poll()
        assert [f.id for f in events.fills] == [f"{bid}-20"]
        assert events.statuses == [OrderStatus.PARTIALLY_FILLED]
    finally:
        await b.close()


async def test_a_partial_fill_then_cancel_reports_the_fill_first(
    account: TradierAccount, broker: TradierBroker, events: Events
) -> None:
    o = order(quantity=100)
    bid = await broker.submit(o)
    account.fill(int(bid), 40, 20.0)
    account.set_status(int(bid), "canceled")
    await until(lambda: OrderStatus.CANCELED in events.statuses)
    assert [(f.id, f.quantity) for f in events.fills] == [(f"{bid}-40", 40)]
    assert events.statuses[-2:] == [OrderStatus.PARTIALLY_FILLED, OrderStatus.CANCELED]


async def test_polling_survives_a_failing_listing(
    account: TradierAccount, broker: TradierBroker, events: Events
) -> None:
    account.fake.fail(ORDERS, 500, times=2, method="GET")
    bid = await broker.submit(order())
    account.fill(int(bid), 10, 7.0)
    await until(lambda: len(events.fills) == 1)
    assert events.statuses == [OrderStatus.FILLED]


async def test_an_order_missing_from_the_listing_is_read_directly(
    account: TradierAccount, broker: TradierBroker, events: Events
) -> None:
    old = account.add_order(tag="o-gtc", quantity=3.0, duration="gtc")
    assert await broker.fills_for("o-gtc") == []  # adopted for polling
    account.unlisted.add(old["id"])  # the listing no longer shows it; GET /orders/{id} does
    account.fill(old["id"], 3, 12.0)
    await until(lambda: len(events.fills) == 1)
    assert events.fills[0].id == f"{old['id']}-3"


async def test_fills_for_replays_what_polling_has_not_reported(
    account: TradierAccount, events: Events
) -> None:
    b = make_broker(account)  # not started: a process that just came up
    try:
        placed = account.add_order(tag="o-replay", quantity=100.0, side="sell_short")
        account.fill(placed["id"], 60, 50.0)
        fills = await b.fills_for("o-replay")
        assert [(f.id, f.quantity, f.price, f.intent) for f in fills] == [
            (f"{placed['id']}-60", 60, 50.0, Intent.SELL_SHORT)
        ]
        assert await b.fills_for("o-replay") == []  # already reported
        account.fill(placed["id"], 40, 51.0)
        again = await b.fills_for("o-replay", filled_quantity=60, avg_fill_price=50.0)
        assert [(f.id, f.quantity, f.price) for f in again] == [(f"{placed['id']}-100", 40, 51.0)]
        assert await b.fills_for("o-unknown") == []
    finally:
        await b.close()


# -- positions and balances -------------------------------------------------------------
async def test_positions_none_one_and_many(account: TradierAccount, broker: TradierBroker) -> None:
    assert await broker.positions() == []  # {"positions": "null"}
    account.positions = [
        {
            "cost_basis": 2070.1,
            "date_acquired": "2018-08-08T14:41:11.405Z",
            "id": 130089,
            "quantity": 10.0,
            "symbol": "AAPL",
        }
    ]
    [aapl] = await broker.positions()
    assert (aapl.symbol, aapl.quantity, aapl.avg_price) == ("AAPL", 10, 207.01)
    account.positions.append(
        {
            "cost_basis": -5000.0,
            "date_acquired": "2019-01-31T17:05:16.000Z",
            "id": 130090,
            "quantity": -50.0,
            "symbol": "TSLA",
        }
    )
    tsla = (await broker.positions())[1]
    assert (tsla.symbol, tsla.quantity, tsla.avg_price) == ("TSLA", -50, 100.0)


async def test_balances_of_a_margin_account(account: TradierAccount, broker: TradierBroker) -> None:
    account.balances = {
        "account_number": ACCOUNT,
        "account_type": "margin",
        "total_equity": 17798.36,
        "total_cash": 6363.86,
        "long_market_value": 11434.5,
        "short_market_value": -500.0,
        "open_pl": 546.9,
        "close_pl": -4813.0,
        "margin": {"stock_buying_power": 12727.72, "option_buying_power": 6363.86},
    }
    state = await broker.balances()
    assert state.account == ACCOUNT
    assert (state.equity, state.cash, state.buying_power) == (17798.36, 6363.86, 12727.72)
    assert (state.unrealized_pnl, state.realized_pnl_today) == (546.9, -4813.0)
    assert state.gross_exposure == 11934.5


async def test_balances_of_cash_and_pdt_accounts(
    account: TradierAccount, broker: TradierBroker
) -> None:
    account.balances = {
        "account_number": ACCOUNT,
        "account_type": "cash",
        "total_equity": 5000.0,
        "total_cash": 4343.38,
        "margin": "null",
        "cash": {"cash_available": 3033.38, "sweep": 0, "unsettled_funds": 1310.0},
    }
    assert (await broker.balances()).buying_power == 3033.38
    account.balances = {
        "account_number": ACCOUNT,
        "account_type": "pdt",
        "total_equity": 30000.0,
        "total_cash": 30000.0,
        "pdt": {"stock_buying_power": 120000.0},
    }
    assert (await broker.balances()).buying_power == 120000.0


async def test_balances_null_is_an_error(broker: TradierBroker) -> None:
    with pytest.raises(BrokerError, match="no balances"):
        await broker.balances()


# -- with the execution engine ----------------------------------------------------------
async def quote(symbol: str) -> Quote:
    return Quote(symbol=symbol, time=time.time(), last=100.0, bid=99.99, ask=100.01)


async def make_engine(redis: Redis, broker: TradierBroker) -> ExecutionEngine:
    engine = ExecutionEngine(
        ExecutionStore(redis),
        broker,
        RiskEngine(market_hours="always"),
        quote,
        broker_timeout=3.0,
        adopt_book=False,  # the fake keeps no positions of its own; adoption is tested in test_engine.py
    )
    await engine.start()
    return engine


async def test_engine_alert_to_tradier_order_to_fill_to_position(
    redis: Redis, account: TradierAccount
) -> None:
    broker = make_broker(account)
    engine = await make_engine(redis, broker)
    try:
        alert = Alert(ticker="AAPL", action=AlertAction.BUY, quantity=10, alert_id="tv-1")
        decision = await engine.handle_alert(alert)
        assert decision.status == "accepted" and decision.order_id
        oid = decision.order_id
        await until(lambda: any(o.get("tag") == oid for o in account.orders.values()))
        placed = account.by_tag(oid)
        assert account.forms[0]["side"] == "buy" and account.forms[0]["quantity"] == "10"
        account.fill(placed["id"], 4, 100.0)
        account.fill(placed["id"], 6, 100.5)  # both between two polls: one delta of 10
        await until(lambda: engine.book.position("AAPL") == 10)
        stored = await engine.store.get_order(oid)
        assert stored is not None
        assert stored.status is OrderStatus.FILLED
        assert stored.broker_order_id == str(placed["id"])
        assert stored.filled_quantity == 10 and stored.avg_fill_price == pytest.approx(100.3)
        [pos] = engine.book.positions()
        assert (pos.symbol, pos.quantity) == ("AAPL", 10)
        assert account.posts() == 1
    finally:
        await engine.close()


async def test_engine_timeout_leaves_the_order_unknown_then_reconciles(
    redis: Redis, account: TradierAccount
) -> None:
    broker = make_broker(account, timeout=0.3)
    engine = await make_engine(redis, broker)
    try:
        account.fake.fail(ORDERS, None, delay=0.8, method="POST")  # placed, answered late
        alert = Alert(ticker="AAPL", action=AlertAction.BUY, quantity=5, alert_id="tv-slow")
        decision = await engine.handle_alert(alert)
        oid = decision.order_id
        assert oid

        async def status() -> OrderStatus | None:
            stored = await engine.store.get_order(oid)
            return stored.status if stored else None

        async def is_unknown() -> bool:
            return await status() is OrderStatus.UNKNOWN

        await until(is_unknown)
        assert account.posts() == 1

        async def is_submitted() -> bool:  # Tradier did take it: the poller finds its tag
            return await status() is OrderStatus.SUBMITTED

        await until(is_submitted)
        stored = await engine.store.get_order(oid)
        assert stored is not None and stored.broker_order_id == str(account.by_tag(oid)["id"])
        account.fill(account.by_tag(oid)["id"], 5, 100.0)
        await until(lambda: engine.book.position("AAPL") == 5)
        assert account.posts() == 1
    finally:
        await engine.close()


async def test_engine_restart_reconciles_fills_made_while_down(
    redis: Redis, account: TradierAccount
) -> None:
    engine = await make_engine(redis, make_broker(account))
    try:
        alert = Alert(ticker="AAPL", action=AlertAction.BUY, quantity=8, alert_id="tv-restart")
        oid = (await engine.handle_alert(alert)).order_id
        assert oid

        async def submitted() -> bool:
            stored = await engine.store.get_order(oid)
            return stored is not None and stored.status is OrderStatus.SUBMITTED

        await until(submitted)
    finally:
        await engine.close()
    placed = account.by_tag(oid)
    account.fill(placed["id"], 8, 99.0)  # while nobody is watching
    again = await make_engine(redis, make_broker(account))  # start() reconciles by tag
    try:
        await until(lambda: again.book.position("AAPL") == 8)
        stored = await again.store.get_order(oid)
        assert stored is not None and stored.status is OrderStatus.FILLED
        assert [f.id for f in await again.store.fills()] == [f"{placed['id']}-8"]
        await asyncio.sleep(POLL * 5)
        assert again.book.position("AAPL") == 8 and account.posts() == 1
    finally:
        await again.close()
