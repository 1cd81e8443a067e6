"""Settlement at expiry: which bookings each held contract becomes."""

from __future__ import annotations

from datetime import UTC, datetime

from app.execution.expiry import expired, settlement
from app.models.instruments import multiplier_of
from app.models.orders import Fill, Intent
from app.portfolio.book import AccountBook

PUT = "SPY261218P00590000"
CALL = "SPY261218C00600000"


def book_with(*fills: tuple[str, Intent, int, float, str]) -> AccountBook:
    book = AccountBook(account="a", cash=100_000.0, multiplier_of=multiplier_of)
    for i, (symbol, intent, qty, price, strategy) in enumerate(fills):
        book.apply_fill(
            Fill(
                id=str(i),
                order_id=str(i),
                broker="paper",
                account="a",
                symbol=symbol,
                intent=intent,
                quantity=qty,
                price=price,
                time=1.8e9,
                strategy=strategy,
            )
        )
    return book


def test_a_contract_expires_after_its_session_closes_not_at_midnight() -> None:
    close = datetime(2026, 12, 18, 21, 0, tzinfo=UTC).timestamp()  # 16:00 New York
    assert not expired(CALL, close - 1)
    assert expired(CALL, close)


def test_an_assigned_short_put_buys_the_shares_at_the_strike() -> None:
    book = book_with((PUT, Intent.SELL_SHORT, 2, 3.10, "wheel"))
    got = settlement(book, PUT, 580.0, "expiry-x", "a")
    assert [(r.symbol, r.intent, r.quantity, r.settle_price, r.strategy) for r in got] == [
        (PUT, Intent.BUY_TO_COVER, 2, 0.0, "wheel"),
        ("SPY", Intent.BUY, 200, 590.0, "wheel"),
    ]


def test_a_covered_call_assigned_sells_the_shares_it_covers() -> None:
    book = book_with(
        ("SPY", Intent.BUY, 100, 580.0, "wheel"), (CALL, Intent.SELL_SHORT, 1, 2.0, "wheel")
    )
    got = settlement(book, CALL, 610.0, "expiry-y", "a")
    assert [(r.symbol, r.intent, r.quantity, r.settle_price) for r in got] == [
        (CALL, Intent.BUY_TO_COVER, 1, 0.0),
        ("SPY", Intent.SELL, 100, 600.0),
    ]


def test_out_of_the_money_each_strategy_part_closes_at_zero_and_nothing_else() -> None:
    book = book_with((CALL, Intent.BUY, 1, 2.0, "a"), (CALL, Intent.BUY, 2, 2.5, "b"))
    got = settlement(book, CALL, 590.0, "expiry-z", "a")
    assert [(r.intent, r.quantity, r.settle_price, r.strategy) for r in got] == [
        (Intent.SELL, 1, 0.0, "a"),
        (Intent.SELL, 2, 0.0, "b"),
    ]
    assert len({r.client_order_id for r in got}) == 2
