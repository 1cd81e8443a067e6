"""Option and multileg (spread) orders with TradierBroker against the local Tradier server:
what is POSTed, and how executions come back as fills a user's book relies on."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from app.brokers.base import BrokerError, BrokerTimeoutError
from app.brokers.tradier import TradierBroker
from app.models.orders import (
    Intent,
    NetEffect,
    Order,
    OrderLeg,
    OrderRequest,
    OrderStatus,
    OrderType,
)
from app.tradier.client import TradierError
from tests.fakes.tradier_orders import TradierAccount
from tests.support.poll import until
from tests.support.tradier import (
    ACCOUNT,
    ORDERS,
    POLL,
    Events,
    account,
    broker,
    events,
    make_broker,
)

__all__ = ["account", "broker", "events"]  # fixtures

CALL = "SPY261218C00600000"
# an iron condor on SPY: long 560 put, short 570 put, short 630 call, long 640 call
CONDOR = (
    OrderLeg(symbol="SPY261218P00560000", intent=Intent.BUY),
    OrderLeg(symbol="SPY261218P00570000", intent=Intent.SELL_SHORT),
    OrderLeg(symbol="SPY261218C00630000", intent=Intent.SELL_SHORT),
    OrderLeg(symbol="SPY261218C00640000", intent=Intent.BUY),
)


def make_order(oid: str, **fields: Any) -> Order:
    now = time.time()
    request = OrderRequest(client_order_id=oid, strategy="wheel", **fields)
    return Order(
        id=oid, broker="tradier", account=ACCOUNT, request=request, created_at=now, updated_at=now
    )


def option(oid: str = "o-call-1", **kw: Any) -> Order:
    fields: dict[str, Any] = {"symbol": CALL, "intent": Intent.BUY, "quantity": 2} | kw
    return make_order(oid, **fields)


def spread(
    oid: str = "o-condor-1",
    legs: tuple[OrderLeg, ...] = CONDOR,
    *,
    units: int = 1,
    net: NetEffect = "credit",
    price: float = 1.25,
) -> Order:
    return make_order(
        oid,
        symbol="SPY",
        intent=Intent.SELL if net == "credit" else Intent.BUY,
        quantity=units,
        order_type=OrderType.LIMIT,
        limit_price=price,
        net=net,
        legs=legs,
    )


# -- one option contract ---------------------------------------------------------------
async def test_an_option_order_sends_the_option_form_and_its_fill_is_booked_under_the_occ(
    account: TradierAccount, broker: TradierBroker, events: Events
) -> None:
    o = option(order_type=OrderType.LIMIT, limit_price=2.5)
    bid = await broker.submit(o)
    assert account.forms == [
        {
            "class": "option",
            "symbol": "SPY",
            "option_symbol": CALL,
            "side": "buy_to_open",
            "quantity": "2",
            "type": "limit",
            "duration": "day",
            "price": "2.5",
            "tag": o.id,
        }
    ]
    account.fill(int(bid), 2, 2.45)
    await until(lambda: OrderStatus.FILLED in events.statuses)
    [fill] = events.fills
    assert (fill.id, fill.symbol, fill.intent, fill.quantity, fill.price) == (
        f"{bid}-2",
        CALL,
        Intent.BUY,
        2,
        2.45,
    )
    assert fill.order_id == o.id and fill.strategy == "wheel"


@pytest.mark.parametrize(
    ("intent", "side"),
    [
        (Intent.BUY, "buy_to_open"),
        (Intent.SELL_SHORT, "sell_to_open"),
        (Intent.SELL, "sell_to_close"),
        (Intent.BUY_TO_COVER, "buy_to_close"),
    ],
)
async def test_each_intent_is_tradiers_option_side_and_comes_back_as_itself(
    account: TradierAccount, broker: TradierBroker, events: Events, intent: Intent, side: str
) -> None:
    account.fill_mode = "immediate"
    account.prices[CALL] = 3.1
    await broker.submit(option(intent=intent))
    assert account.forms[0]["side"] == side
    await until(lambda: len(events.fills) == 1)
    assert (events.fills[0].symbol, events.fills[0].intent) == (CALL, intent)


LEGS = {
    "option_symbol[0]": "SPY261218C00600000",
    "side[0]": "buy_to_open",
    "quantity[0]": "1",
    "option_symbol[1]": "SPY261218C00610000",
    "side[1]": "sell_to_open",
    "quantity[1]": "1",
}


@pytest.mark.parametrize(
    ("form", "message"),
    [
        (
            {"class": "option", "symbol": "QQQ", "option_symbol": CALL, "side": "buy_to_open"},
            "does not belong to QQQ",
        ),
        ({"class": "option", "symbol": "SPY", "option_symbol": CALL, "side": "buy"}, "side"),
        (
            {"class": "option", "symbol": "SPY", "option_symbol": "SPY1", "side": "buy_to_open"},
            "option_symbol",
        ),
        ({"class": "multileg", "symbol": "SPY", "type": "debit"} | LEGS, "Price is required"),
        ({"class": "multileg", "symbol": "SPY", "type": "limit", "price": "1"} | LEGS, "type"),
        (
            {"class": "multileg", "symbol": "SPY", "type": "market"}
            | {k: v for k, v in LEGS.items() if k.endswith("[0]")},
            "2 to 4 legs",
        ),
        (
            {"class": "multileg", "symbol": "SPY", "type": "market"}
            | LEGS
            | {"option_symbol[1]": "SPY261218C00600000"},
            "distinct",
        ),
    ],
)
async def test_the_server_refuses_what_tradier_refuses(
    account: TradierAccount, broker: TradierBroker, form: dict[str, str], message: str
) -> None:
    """What the other tests rely on: the local server checks the forms as Tradier does."""
    full = {"quantity": "1", "type": "market", "duration": "day"} | form
    with pytest.raises(TradierError) as err:
        await broker.client.post(ORDERS, full)
    assert err.value.status == 400 and message in str(err.value)
    assert not account.orders


# -- spreads ---------------------------------------------------------------------------
async def test_an_iron_condor_is_one_post_with_four_legs_and_comes_back_as_four_fills(
    account: TradierAccount, broker: TradierBroker, events: Events
) -> None:
    o = spread(units=2, net="credit", price=1.25)
    bid = await broker.submit(o)
    assert account.posts() == 1
    assert account.forms == [
        {
            "class": "multileg",
            "symbol": "SPY",
            "type": "credit",
            "duration": "day",
            "price": "1.25",
            "option_symbol[0]": "SPY261218P00560000",
            "side[0]": "buy_to_open",
            "quantity[0]": "2",
            "option_symbol[1]": "SPY261218P00570000",
            "side[1]": "sell_to_open",
            "quantity[1]": "2",
            "option_symbol[2]": "SPY261218C00630000",
            "side[2]": "sell_to_open",
            "quantity[2]": "2",
            "option_symbol[3]": "SPY261218C00640000",
            "side[3]": "buy_to_open",
            "quantity[3]": "2",
            "tag": o.id,
        }
    ]
    placed = account.by_tag(o.id)
    assert placed["class"] == "multileg" and placed["num_legs"] == 4
    account.fill_spread(int(bid), 2, [0.40, 1.10, 1.00, 0.45])
    await until(lambda: OrderStatus.FILLED in events.statuses)
    got = sorted((f.symbol, f.intent, f.quantity, f.price) for f in events.fills)
    assert got == [
        ("SPY261218C00630000", Intent.SELL_SHORT, 2, 1.0),
        ("SPY261218C00640000", Intent.BUY, 2, 0.45),
        ("SPY261218P00560000", Intent.BUY, 2, 0.4),
        ("SPY261218P00570000", Intent.SELL_SHORT, 2, 1.1),
    ]
    assert sorted(f.id for f in events.fills) == [f"{bid}-{i}-2" for i in range(4)]
    assert all(f.order_id == o.id and f.strategy == "wheel" for f in events.fills)
    # the order is FILLED once, after its last leg; nothing is reported twice
    assert events.statuses.count(OrderStatus.FILLED) == 1
    assert events.items[-1].status is OrderStatus.FILLED
    await asyncio.sleep(POLL * 5)
    assert len(events.fills) == 4 and not broker.poller.tracked


async def test_a_partially_filled_spread_reports_each_legs_part_then_the_rest(
    account: TradierAccount, broker: TradierBroker, events: Events
) -> None:
    legs = (
        OrderLeg(symbol="SPY261218C00600000", intent=Intent.BUY),
        OrderLeg(symbol="SPY261218C00610000", intent=Intent.SELL_SHORT, ratio=2),
    )
    o = spread("o-ratio-1", legs, units=3, net="debit", price=0.8)
    bid = int(await broker.submit(o))
    assert (account.forms[0]["quantity[0]"], account.forms[0]["quantity[1]"]) == ("3", "6")
    assert account.forms[0]["type"] == "debit"
    account.fill_spread(bid, 1, [5.0, 2.1])  # one unit of three
    await until(lambda: len(events.fills) == 2)
    assert OrderStatus.FILLED not in events.statuses
    assert events.items[-1].status is OrderStatus.PARTIALLY_FILLED
    account.fill_leg(bid, 0, 2, 5.2)  # the long leg completes first...
    await until(lambda: len(events.fills) == 3)
    assert OrderStatus.FILLED not in events.statuses  # ...but the short leg is not done
    account.fill_leg(bid, 1, 4, 2.0)
    await until(lambda: OrderStatus.FILLED in events.statuses)
    got = [(f.id, f.symbol, f.intent, f.quantity, f.price) for f in events.fills]
    assert got == [
        (f"{bid}-0-1", "SPY261218C00600000", Intent.BUY, 1, 5.0),
        (f"{bid}-1-2", "SPY261218C00610000", Intent.SELL_SHORT, 2, 2.1),
        (f"{bid}-0-3", "SPY261218C00600000", Intent.BUY, 2, 5.2),
        (f"{bid}-1-6", "SPY261218C00610000", Intent.SELL_SHORT, 4, 2.0),
    ]
    contracts: dict[str, int | float] = {}
    for f in events.fills:
        contracts[f.symbol] = contracts.get(f.symbol, 0) + f.quantity
    assert contracts == {"SPY261218C00600000": 3, "SPY261218C00610000": 6}


async def test_a_spread_filled_at_placement_and_a_half_filled_one(
    account: TradierAccount, broker: TradierBroker, events: Events
) -> None:
    account.fill_mode = "partial"
    bid = await broker.submit(spread("o-half", units=4))
    await until(lambda: len(events.fills) == 4)
    assert {f.quantity for f in events.fills} == {2}
    assert OrderStatus.FILLED not in events.statuses
    assert account.orders[int(bid)]["status"] == "partially_filled"
    account.fill_mode = "immediate"
    await broker.submit(spread("o-whole", units=1))
    await until(lambda: len(events.fills) == 8)
    whole = [e for e in events.items if e.order_id == "o-whole"]
    assert whole[-1].status is OrderStatus.FILLED
    assert sum(1 for e in whole if e.fill is not None) == 4


async def test_an_unanswered_spread_is_found_by_tag_and_never_placed_twice(
    account: TradierAccount, events: Events
) -> None:
    b = make_broker(account, timeout=0.3)
    await b.start(events)
    try:
        account.fake.fail(ORDERS, None, delay=0.6, method="POST")  # placed, answered late
        o = spread("o-lost-1")
        with pytest.raises(BrokerTimeoutError):
            await b.submit(o)
        await until(lambda: OrderStatus.SUBMITTED in events.statuses)
        placed = account.by_tag(o.id)
        state = await b.find_by_tag(o.id)
        assert state is not None and state.broker_order_id == str(placed["id"])
        account.fill_spread(placed["id"], 1, [0.4, 1.1, 1.0, 0.45])
        await until(lambda: OrderStatus.FILLED in events.statuses)
        assert sorted(f.symbol for f in events.fills) == sorted(leg.symbol for leg in CONDOR)
        assert account.posts() == 1 and len(account.orders) == 1
    finally:
        await b.close()


async def test_fills_for_after_a_restart_learns_the_legs_from_tradier(
    account: TradierAccount,
) -> None:
    placed = account.add_multileg(
        [("SPY261218C00600000", "buy_to_open", 2), ("SPY261218C00610000", "sell_to_open", 2)],
        type="debit",
        price=1.5,
        tag="o-before",
    )
    account.fill_spread(placed["id"], 1, [4.0, 2.5])
    account.string_numbers = True  # and Tradier sends numbers as strings
    b = make_broker(account)  # a new process: nothing tracked
    try:
        fills = await b.fills_for("o-before")
        assert [(f.id, f.symbol, f.intent, f.quantity, f.price) for f in fills] == [
            (f"{placed['id']}-0-1", "SPY261218C00600000", Intent.BUY, 1, 4.0),
            (f"{placed['id']}-1-1", "SPY261218C00610000", Intent.SELL_SHORT, 1, 2.5),
        ]
        assert await b.fills_for("o-before") == []  # already reported
        account.fill_spread(placed["id"], 1, [4.2, 2.7])
        # the engine says what it booked per leg: only the rest comes back
        again = await b.fills_for(
            "o-before",
            filled_quantity=1,
            leg_fills={"SPY261218C00600000": [1, 4.0], "SPY261218C00610000": [1, 2.5]},
        )
        assert [(f.id, f.quantity, f.price) for f in again] == [
            (f"{placed['id']}-0-2", 1, 4.2),
            (f"{placed['id']}-1-2", 1, 2.7),
        ]
        state = await b.find_by_tag("o-before")
        assert state is not None and state.status is OrderStatus.FILLED
    finally:
        await b.close()


async def test_a_five_leg_request_is_refused_before_anything_is_sent(
    account: TradierAccount, broker: TradierBroker
) -> None:
    five = (*CONDOR, OrderLeg(symbol="SPY261218C00650000", intent=Intent.BUY))
    with pytest.raises(BrokerError, match="5 legs") as err:
        await broker.submit(spread("o-five", five))
    assert not isinstance(err.value, BrokerTimeoutError) and err.value.retryable is False
    assert account.posts() == 0 and not broker.poller.pending and not broker.poller.tracked


async def test_a_settlement_booking_is_never_sent(
    account: TradierAccount, broker: TradierBroker
) -> None:
    expiry = option("o-expire", intent=Intent.SELL, settle_price=0.0)
    with pytest.raises(BrokerError, match="settle") as err:
        await broker.submit(expiry)
    assert err.value.retryable is False
    assert account.posts() == 0


async def test_tradiers_refusal_of_a_spread_is_a_broker_error_with_its_words(
    account: TradierAccount, broker: TradierBroker
) -> None:
    account.reject_next = [["Spread not allowed for account option level"]]
    with pytest.raises(BrokerError, match="option level") as err:
        await broker.submit(spread())
    assert not isinstance(err.value, BrokerTimeoutError)
    assert account.posts() == 1 and not account.orders


async def test_cancel_a_spread(
    account: TradierAccount, broker: TradierBroker, events: Events
) -> None:
    o = spread("o-cancel-1")
    o.broker_order_id = await broker.submit(o)
    account.fill_leg(int(o.broker_order_id), 0, 1, 0.4)
    await broker.cancel(o)
    await until(lambda: OrderStatus.CANCELED in events.statuses)
    assert [(f.symbol, f.quantity) for f in events.fills] == [("SPY261218P00560000", 1)]
    placed = account.orders[int(o.broker_order_id)]
    assert {leg["status"] for leg in placed["leg"]} == {"canceled", "filled"}


# -- positions -------------------------------------------------------------------------
async def test_option_positions_are_in_contracts_at_a_per_share_price(
    account: TradierAccount, broker: TradierBroker
) -> None:
    account.string_numbers = True
    account.positions = [
        {"cost_basis": 250.0, "id": 1, "quantity": 1.0, "symbol": CALL},
        {"cost_basis": -1100.0, "id": 2, "quantity": -4.0, "symbol": "SPY261218P00570000"},
        {"cost_basis": 2070.1, "id": 3, "quantity": 10.0, "symbol": "AAPL"},
    ]
    got = [(p.symbol, p.quantity, p.avg_price, p.multiplier) for p in await broker.positions()]
    assert got == [
        (CALL, 1, 2.5, 100.0),
        ("SPY261218P00570000", -4, 2.75, 100.0),
        ("AAPL", 10, 207.01, 1.0),
    ]


async def test_a_spread_preview_places_nothing(
    account: TradierAccount, broker: TradierBroker
) -> None:
    preview = await broker.preview(spread("o-preview", units=2))
    assert preview["result"] is True and preview["class"] == "multileg"
    assert preview["strategy"] == "condor"
    assert account.forms[0]["preview"] == "true" and account.forms[0]["class"] == "multileg"
    assert not account.orders
