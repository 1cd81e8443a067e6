"""One book per account for every kind of instrument, and one trading day on every surface.

Random fill sequences over an equity, an option (multiplier 100), a future (point value)
and a crypto pair (0.0375 BTC steps): the book's positions are the sums of the fills, its
cash the start less every signed quantity x price x multiplier and commission, realised
plus unrealised P&L its equity change, its running totals what a recount gives, and the
account figures the API shows, risk's snapshot and the analytics agree to the cent.
"""

from __future__ import annotations

import itertools
from datetime import date
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.journal.analytics import realise
from app.journal.plan import JournalConfig
from app.models.instruments import multiplier_of
from app.models.orders import Fill, Intent
from app.portfolio.book import AccountBook
from app.risk import RiskEngine, parse_limits
from tests.support.risk import harness

START = 1_000_000.0
T = 1_795_000_000.0  # 2026-11-18 (a Wednesday), 05:33 New York
SYMBOLS = {
    "AAPL": (1, [1, 5, 10]),
    "SPY261218C00600000": (100, [1, 2, 3]),  # an OCC option: 100 shares a contract
    "MNQZ6": (2, [1, 2]),  # Micro Nasdaq future: $2 a point
    "BTC/USDT": (1, [0.0375, 0.125, 0.5]),  # fractions of a coin
}
_ids = itertools.count()


def fill(symbol: str, signed: float, price: float, commission: float, ts: float) -> Fill:
    return Fill(
        id=f"f{next(_ids)}",
        order_id="o",
        broker="paper",
        account="acct",
        symbol=symbol,
        intent=Intent.BUY if signed > 0 else Intent.SELL,
        quantity=abs(signed),
        price=price,
        commission=commission,
        time=ts,
    )


steps = st.lists(
    st.tuples(
        st.sampled_from(sorted(SYMBOLS)),
        st.integers(0, 2),
        st.booleans(),
        st.floats(10, 500).map(lambda p: round(p, 2)),
        st.sampled_from([0.0, 0.35, 1.0]),
    ),
    min_size=1,
    max_size=40,
)


def test_the_registry_gives_the_multipliers_the_book_uses() -> None:
    assert {s: multiplier_of(s) for s in SYMBOLS} == {s: m for s, (m, _) in SYMBOLS.items()}


@settings(max_examples=150, deadline=None)
@given(steps, st.floats(10, 500).map(lambda p: round(p, 2)))
def test_every_kind_of_instrument_in_one_book(
    trades: list[tuple[str, int, bool, float, float]], mark: float
) -> None:
    risk = harness(RiskEngine(parse_limits({}), clock=lambda: T, market_hours="always"))
    book: AccountBook = risk.book
    book.multiplier_of = multiplier_of
    book.cash = START
    book.day_start_equity = START
    fills: list[Fill] = []
    held: dict[str, float] = {}
    cash = START
    for n, (symbol, size, buy, price, commission) in enumerate(trades):
        sizes = SYMBOLS[symbol][1]
        quantity = sizes[size % len(sizes)]
        signed = quantity if buy else -quantity
        f = fill(symbol, signed, price, commission, T + n)
        book.apply_fill(f)
        fills.append(f)
        held[symbol] = held.get(symbol, 0.0) + signed
        cash -= signed * price * SYMBOLS[symbol][0] + commission
    for symbol in held:
        book.mark(symbol, mark, T + len(trades))

    # positions are the sums of the fills; cash the start less what they cost
    for symbol, quantity in held.items():
        assert book.position(symbol) == pytest.approx(quantity, abs=1e-9)
    assert book.cash == pytest.approx(cash, abs=1e-6)
    # realised + unrealised - commissions = the equity's change
    realised = sum(h.realized_pnl for h in book.holdings.values())
    commissions = sum(f.commission for f in fills)
    assert realised + book.unrealized - commissions == pytest.approx(book.equity - START, abs=1e-6)
    assert book.daily_pnl == pytest.approx(book.equity - START, abs=1e-6)
    # the running totals the checks read are what a recount gives
    totals = (book.net_mv, book.gross, book.open_positions)
    book.recompute()
    assert totals[0] == pytest.approx(book.net_mv, abs=1e-6)
    assert totals[1] == pytest.approx(book.gross, abs=1e-6)
    assert totals[2] == book.open_positions
    # every surface agrees to the cent: the API's account, risk's snapshot, analytics
    state = book.state()
    snap = risk.snapshot()["account"]
    assert round(snap["cash"], 2) == state.cash and round(snap["equity"], 2) == state.equity
    assert round(snap["gross_exposure"], 2) == state.gross_exposure
    trips = realise(fills)
    assert round(sum(t.gross for t in trips.trips), 2) == pytest.approx(
        round(realised, 2), abs=0.011
    )
    assert round(sum(trips.daily.values()), 2) == pytest.approx(
        round(realised - commissions, 2), abs=0.011
    )


def new_york(day: int, hour: int) -> float:
    from datetime import datetime

    return datetime(2026, 11, day, hour, tzinfo=ZoneInfo("America/New_York")).timestamp()


def test_pre_and_after_market_fills_belong_to_their_day_on_every_surface() -> None:
    """Fills at 08:00, 12:00 and 19:00 New York on Tuesday and at 10:00 on Wednesday:
    risk, the book (``/api/v1/account`` and ``/api/v1/risk`` read it), the analytics and
    the journal's day documents put the first three on Tuesday and the last on Wednesday."""
    times = [new_york(17, 8), new_york(17, 12), new_york(17, 19), new_york(18, 10)]
    clock = [times[0]]
    risk = harness(RiskEngine(parse_limits({}), clock=lambda: clock[0], market_hours="exchange"))
    book = risk.book
    book.cash = START
    tuesday, wednesday = "2026-11-17", "2026-11-18"
    fills = [
        fill("AAPL", 10, 100.0, 1.0, times[0]),
        fill("AAPL", -5, 101.0, 1.0, times[1]),
        fill("AAPL", -5, 102.0, 1.0, times[2]),
        fill("AAPL", 4, 103.0, 1.0, times[3]),
    ]
    days = []
    for f in fills:
        clock[0] = f.time
        book.apply_fill(f)
        days.append((book.day, risk.trading_day(f.time), risk.snapshot()["daily"]["pnl"]))
        if f is fills[2]:
            assert book.realized_today == pytest.approx(5 * 1 + 5 * 2 - 3)  # Tuesday's
    assert [d[0] for d in days] == [tuesday] * 3 + [wednesday]
    assert [d[1] for d in days] == [tuesday] * 3 + [wednesday]
    assert book.realized_today == pytest.approx(-1.0)  # Wednesday: one commission so far
    by_day = realise(fills).daily
    assert sorted(by_day) == [date(2026, 11, 17), date(2026, 11, 18)]
    assert by_day[date(2026, 11, 17)] == pytest.approx(12.0)
    config = JournalConfig(username="t@example.com")
    assert len({config.date_unix(f) for f in fills[:3]}) == 1
    assert config.date_unix(fills[3]) != config.date_unix(fills[0])
