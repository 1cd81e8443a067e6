"""Positions and P&L from fills: FIFO lots, long and short, realised and unrealised.

Pure and synchronous (no I/O): the engine persists the result, tests drive it directly.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from app.execution.fifo import Lots, match
from app.models.orders import Fill
from app.models.portfolio import AccountState, Position, StrategyPosition

EXCHANGE_TZ = ZoneInfo("America/New_York")
# the strategy of what the broker's book holds and no fill of ours explains (a manual
# trade, a book adopted at start-up): the one alerts without a ``strategy`` have, so a
# plain ``exit`` closes it, a named strategy's does not (``flatten`` does too); it keeps
# the per-strategy parts summing to the account's position
EXTERNAL_STRATEGY = "default"
# orders of the flatten command and the kill switch: their fills close every strategy's
# position in the symbol
FLATTEN_STRATEGY = "flatten"


def trading_day(ts: float) -> str:
    """The exchange-local calendar day of a timestamp: the fallback for a ledger used on
    its own (the engine gives its ledger the risk calendar's session days)."""
    return datetime.fromtimestamp(ts, EXCHANGE_TZ).date().isoformat()


@dataclass
class Book:
    """One symbol's open lots and lifetime realised P&L."""

    symbol: str
    lots: Lots = field(default_factory=deque)  # [signed quantity, price], oldest first
    realized: float = 0.0
    last: float | None = None
    # the sum of the lots, kept as they change (read many times per alert by the risk
    # figures; FIFO matching changes the sum by exactly the fill's signed quantity)
    _quantity: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._quantity = int(sum(lot[0] for lot in self.lots))

    @property
    def quantity(self) -> int:
        return self._quantity

    @property
    def avg_price(self) -> float:
        qty = self.quantity
        if qty == 0:
            return 0.0
        return sum(lot[0] * lot[1] for lot in self.lots) / qty

    def apply(self, signed_qty: int, price: float) -> float:
        """Add a fill; returns the P&L it realised (FIFO against opposite lots)."""
        realized, remaining = match(self.lots, signed_qty, price)
        if remaining:
            self.lots.append([remaining, price])
        self._quantity += signed_qty
        self.realized += realized
        return realized

    def to_dict(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "lots": [[lot[0], lot[1]] for lot in self.lots],
            "realized": self.realized,
            "last": self.last,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Book:
        return cls(
            symbol=data["symbol"],
            lots=deque([int(q), float(p)] for q, p in data["lots"]),
            realized=float(data.get("realized", 0.0)),
            last=data.get("last"),
        )


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """What ``Ledger.apply_fill`` for one symbol can change: enough to undo it."""

    cash: float
    day: str
    realized_today: float
    commissions_today: float
    day_start_equity: float | None
    symbol: str
    book: dict[str, Any] | None
    strategy_books: dict[str, dict[str, Any]]


@dataclass
class Ledger:
    account: str
    cash: float
    books: dict[str, Book] = field(default_factory=dict)
    day: str = ""
    realized_today: float = 0.0
    commissions_today: float = 0.0
    day_start_equity: float | None = None
    # the trading day of a timestamp: the engine passes the risk calendar's
    day_of: Callable[[float], str] = field(default=trading_day, repr=False, compare=False)
    # each strategy's part of each symbol's position, FIFO of its own fills: the account
    # book (``books``) is their sum, what the broker holds
    strategy_books: dict[tuple[str, str], Book] = field(default_factory=dict)

    def roll(self, ts: float) -> None:
        """Reset the daily figures at the first event of a new trading day."""
        day = self.day_of(ts)
        if day != self.day:
            self.day = day
            self.realized_today = 0.0
            self.commissions_today = 0.0
            self.day_start_equity = self.equity

    def apply_fill(self, fill: Fill) -> float:
        self.roll(fill.time)
        book = self.books.setdefault(fill.symbol, Book(fill.symbol))
        signed = fill.quantity * fill.side.sign
        realized = book.apply(signed, fill.price)
        book.last = fill.price if book.last is None else book.last
        self.cash -= signed * fill.price + fill.commission
        self.realized_today += realized - fill.commission
        self.commissions_today += fill.commission
        if not book.lots and book.realized == 0.0:
            self.books.pop(fill.symbol, None)
        self._attribute(fill.strategy, fill.symbol, signed, fill.price)
        return realized

    def _attribute(self, strategy: str, symbol: str, signed: int, price: float) -> None:
        """Book ``signed`` shares to ``strategy``'s part of the symbol; a flatten's fill
        closes the other strategies' parts first (their own realised P&L), oldest name first."""
        if strategy == FLATTEN_STRATEGY:
            for key in sorted(k for k in self.strategy_books if k[1] == symbol):
                part = self.strategy_books[key]
                if not signed or part.quantity == 0 or (part.quantity > 0) == (signed > 0):
                    continue
                closing = min(abs(signed), abs(part.quantity)) * (1 if signed > 0 else -1)
                part.apply(closing, price)
                signed -= closing
        if signed:
            self.strategy_books.setdefault((strategy, symbol), Book(symbol)).apply(signed, price)

    def strategy_position(self, strategy: str, symbol: str) -> int:
        book = self.strategy_books.get((strategy, symbol))
        return book.quantity if book else 0

    def checkpoint(self, symbol: str) -> Checkpoint:
        """Before a fill on ``symbol``: ``restore`` undoes it if it cannot be stored."""
        book = self.books.get(symbol)
        return Checkpoint(
            self.cash,
            self.day,
            self.realized_today,
            self.commissions_today,
            self.day_start_equity,
            symbol,
            book.to_dict() if book is not None else None,
            {k[0]: b.to_dict() for k, b in self.strategy_books.items() if k[1] == symbol},
        )

    def restore(self, cp: Checkpoint) -> None:
        self.cash, self.day = cp.cash, cp.day
        self.realized_today, self.commissions_today = cp.realized_today, cp.commissions_today
        self.day_start_equity = cp.day_start_equity
        if cp.book is None:
            self.books.pop(cp.symbol, None)
        else:
            self.books[cp.symbol] = Book.from_dict(cp.book)
        for key in [k for k in self.strategy_books if k[1] == cp.symbol]:
            del self.strategy_books[key]
        for strategy, data in cp.strategy_books.items():
            self.strategy_books[(strategy, cp.symbol)] = Book.from_dict(data)

    def set_position(self, symbol: str, quantity: int, avg_price: float) -> None:
        """Replace a symbol's lots with one lot (reconciliation with the broker's book);
        what no strategy's fills explain becomes the ``external`` strategy's part."""
        book = self.books.setdefault(symbol, Book(symbol))
        book.lots = deque([[quantity, avg_price]]) if quantity else deque()
        book._quantity = quantity
        attributed = sum(b.quantity for k, b in self.strategy_books.items() if k[1] == symbol)
        if quantity != attributed:
            self._attribute(EXTERNAL_STRATEGY, symbol, quantity - attributed, avg_price)

    def mark(self, symbol: str, last: float) -> None:
        book = self.books.get(symbol)
        if book is not None:
            book.last = last

    def position(self, symbol: str) -> int:
        book = self.books.get(symbol)
        return book.quantity if book else 0

    @property
    def unrealized(self) -> float:
        total = 0.0
        for book in self.books.values():
            qty = book.quantity
            if qty and book.last is not None:
                total += (book.last - book.avg_price) * qty
        return total

    @property
    def market_value(self) -> float:
        return sum(
            b.quantity * (b.last if b.last is not None else b.avg_price)
            for b in self.books.values()
        )

    @property
    def gross_exposure(self) -> float:
        return sum(
            abs(b.quantity) * (b.last if b.last is not None else b.avg_price)
            for b in self.books.values()
        )

    @property
    def equity(self) -> float:
        return self.cash + self.market_value

    @property
    def daily_pnl(self) -> float:
        """Realised today (net of commissions) plus open P&L, the daily loss limit's measure."""
        if self.day_start_equity is not None:
            return self.equity - self.day_start_equity
        return self.realized_today + self.unrealized

    def positions(self) -> list[Position]:
        """Open positions per symbol (the account's), each with its strategies' parts."""
        parts: dict[str, list[StrategyPosition]] = {}
        for (strategy, symbol), part in sorted(self.strategy_books.items()):
            if part.quantity:
                parts.setdefault(symbol, []).append(
                    StrategyPosition(
                        strategy=strategy,
                        quantity=part.quantity,
                        avg_price=round(part.avg_price, 6),
                        realized_pnl=round(part.realized, 2),
                    )
                )
        out = []
        for book in sorted(self.books.values(), key=lambda b: b.symbol):
            qty = book.quantity
            if qty:
                out.append(
                    Position(
                        symbol=book.symbol,
                        quantity=qty,
                        avg_price=round(book.avg_price, 6),
                        realized_pnl=round(book.realized, 2),
                        last_price=book.last,
                        strategies=parts.get(book.symbol, []),
                    )
                )
        return out

    def state(self) -> AccountState:
        equity = self.equity
        gross = self.gross_exposure
        return AccountState(
            account=self.account,
            cash=round(self.cash, 2),
            equity=round(equity, 2),
            buying_power=round(max(0.0, equity * 2 - gross), 2),
            realized_pnl_today=round(self.realized_today, 2),
            unrealized_pnl=round(self.unrealized, 2),
            gross_exposure=round(gross, 2),
            open_positions=sum(1 for b in self.books.values() if b.quantity),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "cash": self.cash,
            "day": self.day,
            "realized_today": self.realized_today,
            "commissions_today": self.commissions_today,
            "day_start_equity": self.day_start_equity,
            "books": [b.to_dict() for b in self.books.values()],
            "strategy_books": [
                {"strategy": k[0], **b.to_dict()} for k, b in self.strategy_books.items()
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Ledger:
        ledger = cls(account=data["account"], cash=float(data["cash"]))
        ledger.day = data.get("day", "")
        ledger.realized_today = float(data.get("realized_today", 0.0))
        ledger.commissions_today = float(data.get("commissions_today", 0.0))
        ledger.day_start_equity = data.get("day_start_equity")
        ledger.books = {b["symbol"]: Book.from_dict(b) for b in data.get("books", [])}
        ledger.strategy_books = {
            (b["strategy"], b["symbol"]): Book.from_dict(b) for b in data.get("strategy_books", [])
        }
        if "strategy_books" not in data:  # stored before strategies were kept: one part each
            for symbol, book in ledger.books.items():
                if book.quantity:
                    ledger._attribute(EXTERNAL_STRATEGY, symbol, book.quantity, book.avg_price)
        return ledger
