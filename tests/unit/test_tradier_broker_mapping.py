"""TradierBroker's pure parts: status map, order form, error classes, fill derivation."""

from __future__ import annotations

import time
from typing import Any

import pytest

from app.brokers.base import BrokerError, BrokerEvent, BrokerTimeoutError
from app.brokers.polling import Tracked
from app.brokers.tradier import (
    STATUSES,
    TradierBroker,
    map_status,
    order_form,
    order_report,
    place_error,
)
from app.models.orders import Fill, Intent, Order, OrderRequest, OrderStatus, OrderType
from app.tradier.client import TradierAuthError, TradierError, TradierRetryableError


def make_order(oid: str = "o0123456789abcdef0123", **kw: Any) -> Order:
    fields: dict[str, Any] = {"symbol": "AAPL", "intent": Intent.BUY, "quantity": 10} | kw
    now = time.time()
    return Order(
        id=oid,
        broker="tradier",
        account="VA1",
        request=OrderRequest(client_order_id=oid, **fields),
        created_at=now,
        updated_at=now,
    )


def broker() -> TradierBroker:
    return TradierBroker("token", "VA1", "http://127.0.0.1:9/v1")


def raw(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": 77,
        "symbol": "AAPL",
        "side": "buy",
        "quantity": 100.0,
        "status": "partially_filled",
        "exec_quantity": 0.0,
        "avg_fill_price": 0.0,
        "last_fill_price": 0.0,
        "last_fill_quantity": 0.0,
        "transaction_date": "2024-05-06T14:30:00.000Z",
    }
    return base | kw


# -- statuses -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("tradier", "ours"),
    [
        ("open", OrderStatus.SUBMITTED),
        ("pending", OrderStatus.SUBMITTED),
        ("calculated", OrderStatus.SUBMITTED),
        ("accepted_for_bidding", OrderStatus.SUBMITTED),
        ("held", OrderStatus.SUBMITTED),
        ("partially_filled", OrderStatus.PARTIALLY_FILLED),
        ("filled", OrderStatus.FILLED),
        ("expired", OrderStatus.EXPIRED),
        ("canceled", OrderStatus.CANCELED),
        ("rejected", OrderStatus.REJECTED),
        ("error", OrderStatus.REJECTED),
        ("Filled", OrderStatus.FILLED),
        ("pending_cancel", OrderStatus.UNKNOWN),
        (None, OrderStatus.UNKNOWN),
    ],
)
def test_status_map(tradier: str | None, ours: OrderStatus) -> None:
    assert map_status(tradier) is ours


def test_every_documented_status_is_mapped() -> None:
    documented = {
        "open", "partially_filled", "filled", "expired", "canceled", "pending",
        "rejected", "calculated", "accepted_for_bidding", "error", "held",
    }  # fmt: skip
    assert documented == set(STATUSES)


# -- the order form -------------------------------------------------------------------
def test_market_form() -> None:
    o = make_order()
    assert order_form(o) == {
        "class": "equity",
        "symbol": "AAPL",
        "side": "buy",
        "quantity": 10,
        "type": "market",
        "duration": "day",
        "price": None,
        "stop": None,
        "tag": o.id,
    }
    assert order_form(o, preview=True)["preview"] == "true"


def test_stop_limit_form_carries_both_prices() -> None:
    o = make_order(order_type=OrderType.STOP_LIMIT, limit_price=10.5, stop_price=10.0)
    form = order_form(o)
    assert (form["type"], form["price"], form["stop"]) == ("stop_limit", 10.5, 10.0)


def test_prices_only_where_the_type_takes_them() -> None:
    form = order_form(make_order(order_type=OrderType.STOP, stop_price=9.0, limit_price=9.5))
    assert form["price"] is None and form["stop"] == 9.0


@pytest.mark.parametrize(
    ("oid", "kw"),
    [
        ("o_underscore", {}),
        ("x" * 256, {}),
        ("o1", {"order_type": OrderType.LIMIT}),
        ("o1", {"order_type": OrderType.STOP}),
    ],
)
def test_invalid_orders_are_refused_locally(oid: str, kw: dict[str, Any]) -> None:
    with pytest.raises(BrokerError):
        order_form(make_order(oid, **kw))


# -- error classes on place ------------------------------------------------------------
@pytest.mark.parametrize(
    ("exc", "unknown", "retryable"),
    [
        (TradierError("bad", status=400), False, False),
        (TradierAuthError("token", status=401), False, False),
        (TradierAuthError("perm", status=403), False, False),
        (TradierError("gave up", status=429), False, True),
        (TradierRetryableError("429", status=429), False, True),
        (TradierError("timeout", status=408), True, False),
        (TradierRetryableError("5xx", status=500), True, False),
        (TradierRetryableError("timed out"), True, False),
        (TradierError("malformed JSON"), True, False),
        (TradierError("XML instead of JSON", status=200), True, False),
    ],
)
def test_place_errors(exc: TradierError, unknown: bool, retryable: bool) -> None:
    err = place_error(exc, "o1")
    assert isinstance(err, BrokerTimeoutError) is unknown
    assert err.retryable is retryable


# -- fill derivation -------------------------------------------------------------------
def tracked(**kw: Any) -> Tracked:
    fields: dict[str, Any] = {
        "order_id": "o1",
        "broker_order_id": "77",
        "symbol": "AAPL",
        "intent": Intent.BUY,
        "quantity": 100,
        "strategy": "s",
    } | kw
    return Tracked(**fields)


def new_fill(t: Tracked, snapshot: dict[str, Any]) -> Fill | None:
    """The shared poller's fill derivation over Tradier's mapping of ``snapshot``."""
    return broker().poller.new_fill(t, order_report(snapshot))


def test_first_fill_uses_the_average_price() -> None:
    t = tracked()
    fill = new_fill(
        t,
        raw(exec_quantity=30.0, avg_fill_price=10.1, last_fill_price=10.2, last_fill_quantity=10.0),
    )
    assert fill is not None
    assert (fill.id, fill.quantity, fill.price) == ("77-30", 30, 10.1)
    assert fill.time == 1_715_005_800.0
    assert (t.filled, t.avg) == (30, 10.1)


def test_one_new_execution_uses_the_last_fill_price() -> None:
    t = tracked(filled=30, avg=10.0)
    fill = new_fill(
        t,
        raw(exec_quantity=50.0, avg_fill_price=10.2, last_fill_price=10.5, last_fill_quantity=20.0),
    )
    assert fill is not None and (fill.id, fill.quantity, fill.price) == ("77-50", 20, 10.5)


def test_several_executions_between_polls_are_priced_from_the_averages() -> None:
    t = tracked(filled=30, avg=10.0)
    fill = new_fill(
        t,
        raw(
            exec_quantity=100.0, avg_fill_price=10.42, last_fill_price=10.8, last_fill_quantity=40.0
        ),
    )
    assert fill is not None
    assert (fill.id, fill.quantity) == ("77-100", 70)
    assert fill.price == pytest.approx((10.42 * 100 - 10.0 * 30) / 70)


def test_no_new_execution_no_fill() -> None:
    t = tracked(filled=30, avg=10.0)
    assert new_fill(t, raw(exec_quantity=30.0, avg_fill_price=10.0)) is None
    assert new_fill(t, raw(exec_quantity=20.0, avg_fill_price=10.0)) is None
    assert t.filled == 30


def test_an_execution_without_any_price_waits() -> None:
    t = tracked()
    assert new_fill(t, raw(exec_quantity=10.0)) is None
    assert t.filled == 0


def test_a_filled_order_without_exec_quantity_fills_its_quantity() -> None:
    t = tracked()
    fill = new_fill(t, raw(status="filled", exec_quantity=None, avg_fill_price=9.5))
    assert fill is not None and (fill.quantity, fill.price) == (100, 9.5)


def test_an_adopted_order_learns_symbol_side_and_size_from_tradier() -> None:
    t = Tracked("o1", "77")
    fill = new_fill(
        t, raw(side="buy_to_cover", symbol="TSLA", exec_quantity=5.0, avg_fill_price=200.0)
    )
    assert fill is not None
    assert (fill.symbol, fill.intent, fill.strategy, t.quantity) == (
        "TSLA",
        Intent.BUY_TO_COVER,
        "default",
        100,
    )


async def test_a_failing_handler_gets_the_same_events_again() -> None:
    b = broker()
    seen: list[BrokerEvent] = []
    fail = [True]

    async def handler(event: BrokerEvent) -> None:
        if fail[0]:
            fail[0] = False
            raise RuntimeError("redis down")
        seen.append(event)

    b.poller.on_event = handler
    b.poller.tracked["77"] = tracked(status=OrderStatus.SUBMITTED)
    snapshot = raw(status="filled", exec_quantity=100.0, avg_fill_price=3.0)
    await b.poller.observe(order_report(snapshot))
    assert seen == [] and b.poller.tracked["77"].filled == 0
    await b.poller.observe(order_report(snapshot))
    assert [(e.status, e.fill.id if e.fill else None) for e in seen] == [
        (OrderStatus.FILLED, "77-100")
    ]
    assert "77" not in b.poller.tracked
    await b.client.close()


async def test_a_status_lagging_its_executions_is_not_reported() -> None:
    b = broker()
    seen: list[BrokerEvent] = []

    async def handler(event: BrokerEvent) -> None:
        seen.append(event)

    b.poller.on_event = handler
    b.poller.tracked["77"] = tracked(status=OrderStatus.SUBMITTED)
    await b.poller.observe(order_report(raw(status="open", exec_quantity=10.0, avg_fill_price=2.0)))
    await b.poller.observe(
        order_report(raw(status="partially_filled", exec_quantity=10.0, avg_fill_price=2.0))
    )
    assert [e.status for e in seen] == [OrderStatus.PARTIALLY_FILLED]
    await b.client.close()
