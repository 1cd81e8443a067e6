from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.models.orders import Fill, Intent
from app.portfolio.book import AccountBook as Ledger
from app.portfolio.book import Part as Book
from app.portfolio.book import calendar_day as trading_day

T = 1_795_000_000.0


def fill(intent: Intent, qty: int, price: float, n: int = 0, commission: float = 0.0) -> Fill:
    return Fill(
        id=f"f{n}-{intent}-{qty}-{price}",
        order_id="o",
        broker="paper",
        account="paper",
        symbol="AAPL",
        intent=intent,
        quantity=qty,
        price=price,
        commission=commission,
        time=T + n,
    )


def test_fifo_long_round_trip_with_scale_in_and_partial_close() -> None:
    book = Book()
    assert book.apply(10, 100.0) == 0
    assert book.apply(10, 110.0) == 0
    assert book.avg_price == 105.0
    assert book.apply(-15, 120.0) == pytest.approx(10 * 20 + 5 * 10)  # FIFO: the 100s go first
    assert book.qty == 5 and book.avg_price == 110.0


def test_short_then_flip_to_long() -> None:
    book = Book()
    book.apply(-10, 50.0)
    assert book.apply(15, 45.0) == pytest.approx(50.0)  # covered 10 at a 5 profit each
    assert book.qty == 5 and book.avg_price == 45.0


def test_ledger_cash_equity_and_daily_pnl_long_and_short() -> None:
    ledger = Ledger("paper", cash=10_000.0)
    ledger.apply_fill(fill(Intent.BUY, 10, 100.0, 1, commission=1.0))
    assert ledger.cash == 10_000.0 - 1000.0 - 1.0
    ledger.mark("AAPL", 105.0, T)
    assert ledger.unrealized == 50.0
    assert ledger.equity == pytest.approx(10_049.0)
    ledger.apply_fill(fill(Intent.SELL, 10, 105.0, 2))
    ledger.apply_fill(fill(Intent.SELL_SHORT, 5, 105.0, 3))
    ledger.mark("AAPL", 100.0, T)
    assert ledger.position("AAPL") == -5
    assert ledger.unrealized == 25.0
    state = ledger.state()
    assert state.realized_pnl_today == pytest.approx(49.0)  # 50 gain less 1 commission
    assert state.open_positions == 1 and state.gross_exposure == 500.0
    assert ledger.daily_pnl == pytest.approx(74.0)


def test_ledger_round_trips_through_its_dict_form() -> None:
    ledger = Ledger("paper", cash=5_000.0)
    ledger.apply_fill(fill(Intent.BUY, 3, 10.0, 1))
    again = Ledger.from_dict(ledger.to_dict())
    assert again.positions() == ledger.positions() and again.cash == ledger.cash


def test_trading_day_is_exchange_local() -> None:
    # 2026-11-20 03:00 UTC is still the 19th in New York
    assert trading_day(1_795_143_600) == "2026-11-19"
    assert trading_day(1_795_143_600 + 5 * 3600) == "2026-11-20"


def test_set_position_replaces_the_lots() -> None:
    ledger = Ledger("live", cash=1_000.0)
    ledger.apply_fill(fill(Intent.BUY, 10, 100.0, 1))
    ledger.set_position("AAPL", -3, 90.0)
    assert ledger.position("AAPL") == -3 and ledger.holdings["AAPL"].avg_price == 90.0
    ledger.set_position("AAPL", 0, 0.0)
    assert ledger.positions() == []


@pytest.mark.parametrize(
    "history",
    [[], [(Intent.BUY, 10, 100.0)], [(Intent.SELL_SHORT, 4, 50.0), (Intent.BUY, 7, 101.0)]],
)
def test_a_fill_that_could_not_be_stored_is_undone_exactly(
    history: list[tuple[Intent, int, float]],
) -> None:
    """The engine books a fill in memory, then stores it; if the store fails it restores
    the checkpoint, and the ledger must equal one that never saw the fill."""
    ledger = Ledger(account="paper", cash=10_000.0)
    for n, (intent, qty, price) in enumerate(history):
        ledger.apply_fill(fill(intent, qty, price, n, commission=1.0))
    before = ledger.to_dict()
    cp = ledger.checkpoint("AAPL")
    ledger.apply_fill(fill(Intent.SELL, 10, 120.0, n=86_400, commission=2.5))  # next day too
    assert ledger.to_dict() != before
    ledger.restore(cp)
    assert ledger.to_dict() == before


@given(
    st.lists(
        st.tuples(st.integers(-50, 50).filter(bool), st.floats(1, 500)), min_size=1, max_size=40
    )
)
def test_a_books_quantity_is_always_the_sum_of_its_lots(trades: list[tuple[int, float]]) -> None:
    """The quantity is kept as fills come (not summed per read): it must never drift from
    the lots, long, short, flipping, and after a round trip through the stored form."""
    book = Book()
    for signed, price in trades:
        book.apply(signed, price)
        assert book.qty == sum(q for q, _ in book.lots)
    assert Book.from_dict(book.to_dict()).qty == book.qty == sum(s for s, _ in trades)


def strategy_fill(intent: Intent, qty: int, price: float, strategy: str, n: int) -> Fill:
    return fill(intent, qty, price, n).model_copy(update={"strategy": strategy, "id": f"s{n}"})


def parts(ledger: Ledger) -> dict[str, int]:
    (position,) = ledger.positions()
    return {p.strategy: p.quantity for p in position.strategies}


def test_each_strategy_keeps_its_part_and_a_flatten_closes_them_all() -> None:
    ledger = Ledger(account="paper", cash=100_000.0)
    ledger.apply_fill(strategy_fill(Intent.BUY, 10, 100.0, "momentum", 1))
    ledger.apply_fill(strategy_fill(Intent.BUY, 4, 101.0, "s1", 2))
    ledger.apply_fill(strategy_fill(Intent.SELL, 1, 102.0, "s1", 3))  # s1's, not momentum's
    assert ledger.position("AAPL") == 13 and parts(ledger) == {"momentum": 10, "s1": 3}
    assert ledger.strategy_position("s1", "AAPL") == 3
    (position,) = ledger.positions()
    s1 = next(p for p in position.strategies if p.strategy == "s1")
    assert s1.avg_price == 101.0 and s1.realized_pnl == 1.0  # its own FIFO lot
    cp = ledger.checkpoint("AAPL")
    ledger.apply_fill(strategy_fill(Intent.SELL, 13, 105.0, "flatten", 4))
    assert ledger.positions() == []
    assert ledger.strategy_position("momentum", "AAPL") == 0
    ledger.restore(cp)  # a flatten whose write failed is undone in every part
    assert parts(ledger) == {"momentum": 10, "s1": 3}
    again = Ledger.from_dict(ledger.to_dict())
    assert parts(again) == {"momentum": 10, "s1": 3}


def test_what_the_broker_holds_beyond_the_strategies_is_the_default_strategys() -> None:
    ledger = Ledger(account="live", cash=100_000.0)
    ledger.apply_fill(strategy_fill(Intent.BUY, 5, 100.0, "momentum", 1))
    ledger.set_position("AAPL", 8, 100.0)  # a manual buy of 3 in the broker's app
    assert parts(ledger) == {"default": 3, "momentum": 5}
    legacy = ledger.to_dict()
    del legacy["strategy_books"]  # a book stored before strategies were kept
    assert parts(Ledger.from_dict(legacy)) == {"default": 8}
