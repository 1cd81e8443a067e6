"""Driving a ``RiskEngine`` and the book it reads the way the execution engine does, for
tests of the checks: quotes mark the book then feed risk, fills go to the book, orders
count in risk's windows and as the book's working orders, an account snapshot sets the
book's cash (and, the first time, the day's start equity)."""

from __future__ import annotations

import itertools
from typing import Any

from app.models.orders import Fill, Intent, OrderRequest
from app.models.portfolio import AccountState
from app.risk.engine import RiskEngine

_ids = itertools.count()


class RiskHarness:
    """A ``RiskEngine`` (every attribute of it reachable here) plus the execution
    engine's side of the hooks."""

    def __init__(self, engine: RiskEngine) -> None:
        self.engine = engine
        self.book = engine.book
        self.book.roll(engine.clock())  # as the execution engine's start does
        self.account_seen = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)

    def on_quote(self, symbol: str, last: float, ts: float) -> None:
        if last > 0:
            self.book.mark(symbol, last, ts)
        self.engine.on_quote(symbol, last, ts)

    def on_order_submitted(self, order: OrderRequest, ts: float | None = None) -> None:
        self.engine.on_order_submitted(order, ts)
        self.book.order_submitted(order, None)

    def on_order_done(self, order_id: str) -> None:
        self.book.order_done(order_id)

    def undo_submitted(self, order: OrderRequest, ts: float) -> None:
        self.engine.undo_submitted(order, ts)
        self.book.order_done(order.client_order_id)

    def on_fill(
        self,
        symbol: str,
        intent: Intent,
        qty: int,
        price: float,
        ts: float | None = None,
        order_id: str | None = None,
    ) -> None:
        now = self.engine.clock() if ts is None else ts
        fill = Fill(
            id=f"f{next(_ids)}",
            order_id=order_id or "o",
            broker="paper",
            account=self.book.account,
            symbol=symbol,
            intent=intent,
            quantity=qty,
            price=price,
            time=now,
        )
        self.book.apply_fill(fill, order_id)
        self.engine.marked(now)

    def update_position(self, symbol: str, qty: int, avg_price: float) -> None:
        self.book.set_position(symbol, qty, avg_price)
        self.engine.rebased()

    def update_account(self, account: AccountState) -> None:
        self.book.cash = account.cash
        self.book.recompute()
        if not self.account_seen:  # mid-day: today's realised P&L came before us
            self.account_seen = True
            self.book.day_start_equity = self.book.equity - account.realized_pnl_today
        self.engine.rebased()


def harness(engine: RiskEngine) -> Any:
    """Typed as ``Any`` so tests call the engine's and the harness's methods alike."""
    return RiskHarness(engine)
