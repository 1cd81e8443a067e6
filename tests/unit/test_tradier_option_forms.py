"""Tradier's option and multileg wire format, pure: the forms we POST and how an order
Tradier reports (a multileg one with its ``leg`` array) maps to the poller's report."""

from __future__ import annotations

import time
from typing import Any

import pytest

from app.brokers.base import BrokerError
from app.brokers.tradier import order_form, order_report
from app.models.orders import Intent, Order, OrderLeg, OrderRequest, OrderStatus, OrderType

CALL = "SPY261218C00600000"
PUT_LONG, PUT_SHORT = "SPY261218P00560000", "SPY261218P00570000"
CALL_SHORT, CALL_LONG = "SPY261218C00630000", "SPY261218C00640000"
CONDOR = (
    OrderLeg(symbol=PUT_LONG, intent=Intent.BUY),
    OrderLeg(symbol=PUT_SHORT, intent=Intent.SELL_SHORT),
    OrderLeg(symbol=CALL_SHORT, intent=Intent.SELL_SHORT),
    OrderLeg(symbol=CALL_LONG, intent=Intent.BUY),
)


def make_order(oid: str = "o-1", **kw: Any) -> Order:
    now = time.time()
    fields: dict[str, Any] = {"symbol": CALL, "intent": Intent.BUY, "quantity": 1} | kw
    return Order(
        id=oid,
        broker="tradier",
        account="VA1",
        request=OrderRequest(client_order_id=oid, **fields),
        created_at=now,
        updated_at=now,
    )


def spread(legs: tuple[OrderLeg, ...] = CONDOR, **kw: Any) -> Order:
    fields: dict[str, Any] = {
        "symbol": "SPY",
        "intent": Intent.SELL,
        "quantity": 1,
        "order_type": OrderType.LIMIT,
        "limit_price": 1.25,
        "net": "credit",
        "legs": legs,
    } | kw
    return make_order("o-spread", **fields)


# -- class=option ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("intent", "side"),
    [
        (Intent.BUY, "buy_to_open"),
        (Intent.SELL_SHORT, "sell_to_open"),
        (Intent.SELL, "sell_to_close"),
        (Intent.BUY_TO_COVER, "buy_to_close"),
    ],
)
def test_an_occ_symbol_is_an_option_order_on_its_underlying(intent: Intent, side: str) -> None:
    form = order_form(make_order(intent=intent, quantity=3))
    assert form == {
        "class": "option",
        "symbol": "SPY",
        "option_symbol": CALL,
        "side": side,
        "quantity": 3,
        "type": "market",
        "duration": "day",
        "price": None,
        "stop": None,
        "tag": "o-1",
    }


def test_option_stop_limit_carries_both_prices() -> None:
    form = order_form(make_order(order_type=OrderType.STOP_LIMIT, limit_price=2.5, stop_price=2.4))
    assert (form["type"], form["price"], form["stop"]) == ("stop_limit", 2.5, 2.4)


def test_an_index_weekly_is_filed_under_its_index() -> None:
    assert order_form(make_order(symbol="SPXW261218C05000000"))["symbol"] == "SPX"


def test_an_equity_order_is_unchanged() -> None:
    assert order_form(make_order(symbol="AAPL", intent=Intent.SELL_SHORT))["class"] == "equity"
    assert order_form(make_order(symbol="AAPL", intent=Intent.SELL_SHORT))["side"] == "sell_short"


def test_a_fraction_of_a_contract_is_refused() -> None:
    with pytest.raises(BrokerError, match="whole contracts"):
        order_form(make_order(quantity=1.5))


# -- class=multileg --------------------------------------------------------------------
def test_an_iron_condor_form() -> None:
    form = order_form(spread(quantity=3))
    assert form == {
        "class": "multileg",
        "symbol": "SPY",
        "type": "credit",
        "duration": "day",
        "price": 1.25,
        "option_symbol[0]": PUT_LONG,
        "side[0]": "buy_to_open",
        "quantity[0]": 3,
        "option_symbol[1]": PUT_SHORT,
        "side[1]": "sell_to_open",
        "quantity[1]": 3,
        "option_symbol[2]": CALL_SHORT,
        "side[2]": "sell_to_open",
        "quantity[2]": 3,
        "option_symbol[3]": CALL_LONG,
        "side[3]": "buy_to_open",
        "quantity[3]": 3,
        "tag": "o-spread",
    }
    assert order_form(spread(), preview=True)["preview"] == "true"


def test_each_leg_is_ratio_times_units() -> None:
    legs = (
        OrderLeg(symbol=CALL, intent=Intent.BUY),
        OrderLeg(symbol=CALL_SHORT, intent=Intent.SELL_SHORT, ratio=2),
    )
    form = order_form(spread(legs, quantity=4, net="debit", intent=Intent.BUY))
    assert (form["quantity[0]"], form["quantity[1]"], form["type"]) == (4, 8, "debit")


@pytest.mark.parametrize(
    ("kw", "kind", "price"),
    [
        ({"order_type": OrderType.MARKET, "limit_price": None, "net": None}, "market", None),
        ({"net": "debit", "intent": Intent.BUY, "limit_price": 0.9}, "debit", 0.9),
        ({"net": "credit"}, "credit", 1.25),
        ({"net": "even", "limit_price": None}, "even", None),
        ({"net": None, "intent": Intent.BUY}, "debit", 1.25),  # the intent says which
        ({"net": None, "intent": Intent.SELL}, "credit", 1.25),
    ],
)
def test_the_multileg_type_and_price(kw: dict[str, Any], kind: str, price: float | None) -> None:
    form = order_form(spread(**kw))
    assert (form["type"], form["price"]) == (kind, price)


@pytest.mark.parametrize(
    ("order", "message"),
    [
        (lambda: spread(CONDOR[:1]), "1 legs"),
        (lambda: spread((*CONDOR, OrderLeg(symbol=CALL, intent=Intent.BUY))), "5 legs"),
        (lambda: spread(order_type=OrderType.STOP, stop_price=1.0), "market or limit"),
        (lambda: spread(limit_price=None), "no net price"),
        (lambda: spread((CONDOR[0], OrderLeg(symbol="SPY", intent=Intent.BUY))), "OCC"),
        (lambda: spread((CONDOR[0], CONDOR[0])), "two legs"),
        (lambda: spread(quantity=1.5), "whole contracts"),
        (lambda: make_order(intent=Intent.SELL, settle_price=0.0), "settle"),
        (lambda: spread(settle_price=0.35), "settle"),
    ],
)
def test_what_tradier_cannot_take_is_refused_locally(order: Any, message: str) -> None:
    with pytest.raises(BrokerError, match=message) as err:
        order_form(order())
    assert err.value.retryable is False


# -- reports ---------------------------------------------------------------------------
def leg(n: int, occ: str, side: str, **kw: Any) -> dict[str, Any]:
    return {
        "id": 9000 + n,
        "type": "credit",
        "symbol": "SPY",
        "side": side,
        "quantity": 2.0,
        "status": "open",
        "duration": "day",
        "price": 1.25,
        "avg_fill_price": 0.0,
        "exec_quantity": 0.0,
        "last_fill_price": 0.0,
        "last_fill_quantity": 0.0,
        "remaining_quantity": 2.0,
        "create_date": "2024-05-06T14:00:00.000Z",
        "transaction_date": "2024-05-06T14:00:00.000Z",
        "class": "option",
        "option_symbol": occ,
    } | kw


def multileg(legs: Any, **kw: Any) -> dict[str, Any]:
    return {
        "id": 8999,
        "type": "credit",
        "symbol": "SPY",
        "side": "sell",
        "quantity": 2.0,
        "status": "partially_filled",
        "duration": "day",
        "price": 1.25,
        "avg_fill_price": 0.0,
        "exec_quantity": 0.0,
        "last_fill_price": 0.0,
        "last_fill_quantity": 0.0,
        "remaining_quantity": 2.0,
        "create_date": "2024-05-06T14:00:00.000Z",
        "transaction_date": "2024-05-06T14:30:00.000Z",
        "class": "multileg",
        "num_legs": 2,
        "strategy": "spread",
        "tag": "o-spread",
        "leg": legs,
    } | kw


def test_a_multileg_order_reports_its_legs() -> None:
    report = order_report(
        multileg(
            [
                leg(
                    1,
                    PUT_LONG,
                    "buy_to_open",
                    status="filled",
                    exec_quantity=2.0,
                    avg_fill_price=0.4,
                    last_fill_price=0.41,
                    last_fill_quantity=1.0,
                    transaction_date="2024-05-06T14:30:00.000Z",
                ),
                leg(2, PUT_SHORT, "sell_to_open"),
            ]
        )
    )
    assert (report.symbol, report.intent, report.tag) == ("SPY", Intent.SELL, "o-spread")
    assert report.status is OrderStatus.PARTIALLY_FILLED
    first, second = report.legs
    assert (first.symbol, first.intent, first.quantity, first.filled) == (
        PUT_LONG,
        Intent.BUY,
        2,
        2,
    )
    assert (first.avg_price, first.last_price, first.last_quantity) == (0.4, 0.41, 1)
    assert first.status is OrderStatus.FILLED and first.time == 1_715_005_800.0
    assert (second.symbol, second.intent, second.filled, second.avg_price) == (
        PUT_SHORT,
        Intent.SELL_SHORT,
        0,
        None,
    )


def test_one_leg_is_an_object_and_numbers_may_be_strings() -> None:
    raw = multileg(
        leg(
            1,
            CALL,
            "sell_to_close",
            quantity="3.00000000",
            exec_quantity="1.00000000",
            avg_fill_price="2.55",
            last_fill_price="null",
        ),
        num_legs="1",
        exec_quantity="null",
    )
    [only] = order_report(raw).legs
    assert (only.symbol, only.intent, only.quantity, only.filled) == (CALL, Intent.SELL, 3, 1)
    assert (only.avg_price, only.last_price) == (2.55, None)


def test_a_multileg_order_without_legs_yet() -> None:
    report = order_report(multileg("null"))
    assert report.legs == () and report.symbol == "SPY"


def test_a_single_option_order_is_reported_under_its_occ_symbol() -> None:
    report = order_report(
        {
            "id": 228749,
            "type": "market",
            "symbol": "SPY",
            "side": "buy_to_close",
            "quantity": "1.00000000",
            "status": "filled",
            "exec_quantity": "1.00000000",
            "avg_fill_price": "2.10",
            "class": "option",
            "option_symbol": CALL,
        }
    )
    assert (report.symbol, report.intent, report.filled, report.avg_price) == (
        CALL,
        Intent.BUY_TO_COVER,
        1,
        2.1,
    )
    assert report.legs == ()
