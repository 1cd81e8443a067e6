"""Backtest run directories for the console and its API, written by the backtest's own
``app.backtest.results.write`` from a hand-made result: one round trip of 10 AAPL."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime
from pathlib import Path

from app.backtest.results import write
from app.backtest.runner import BacktestResult
from app.models.orders import Fill, Intent

CASH = 100_000.0


def write_run(root: Path, name: str, first: date, last: date, gain: float, mtime: float) -> Path:
    """``root/<name>-<first>-<last>``: bought 10 AAPL at 100, sold at 100 + gain / 10 (net
    P&L ``gain``); summary.json's modification time ``mtime``."""
    t0 = datetime(first.year, first.month, first.day, 15, tzinfo=UTC).timestamp()
    exit_price = 100.0 + gain / 10

    def fill(n: int, intent: Intent, price: float, t: float) -> Fill:
        return Fill(
            id=f"f{n}",
            order_id=f"o{n}",
            broker="paper",
            account="default",
            symbol="AAPL",
            intent=intent,
            quantity=10,
            price=price,
            time=t,
            strategy=name,
        )

    result = BacktestResult(
        name,
        datetime(first.year, first.month, first.day, tzinfo=UTC),
        datetime(last.year, last.month, last.day, 23, 59, 59, tzinfo=UTC),
        CASH,
        fills=[fill(1, Intent.BUY, 100.0, t0), fill(2, Intent.SELL, exit_price, t0 + 600)],
        equity=[(t0, CASH), (t0 + 300, CASH + min(gain, 0) - 50), (t0 + 600, CASH + gain)],
        runs=3,
    )
    out = root / f"{name}-{first.isoformat()}-{last.isoformat()}"
    write(result, out)
    os.utime(out / "summary.json", (mtime, mtime))
    return out
