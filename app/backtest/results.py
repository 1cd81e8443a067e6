"""A run's files: ``summary.json`` (the journal's analytics of the run's fills under
``analytics``; CAGR, Sharpe, Sortino, drawdown, exposure and the trade figures under
``metrics``, see ``metrics.py``), ``orders.csv``, ``fills.csv``, ``fills_tradenote.csv``
(TradeNote's Template CSV, account ``backtest-<name>``), ``equity.csv`` and
``report.html`` (``report.py``).

Byte for byte the same for the same inputs: rows in the order they happened, no wall
clock, no random ids (the paper broker's own order ids are left out; ours are hashes
of the alert).
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from app.backtest.metrics import figures
from app.backtest.report import render
from app.backtest.runner import BacktestResult
from app.journal.analytics import DEFAULT_TZ, Realised, realise, summarise
from app.journal.ledger import template_csv
from app.journal.tradenote import JOURNAL_CALENDAR


def summary(result: BacktestResult, realised: Realised | None = None) -> dict[str, Any]:
    realised = realised if realised is not None else realise(result.fills)
    final = result.equity[-1][1] if result.equity else result.starting_cash
    denials = Counter(d.get("check") or "" for d in result.decisions if d["status"] == "denied")
    return {
        "name": result.name,
        "from": result.start.isoformat(),
        "to": result.end.isoformat(),
        "runs": result.runs,
        "alerts": len(result.decisions),
        "decisions": dict(sorted(Counter(d["status"] for d in result.decisions).items())),
        "denials_by_check": dict(sorted(denials.items())),
        "orders": len(result.orders),
        "fills": len(result.fills),
        "starting_equity": result.starting_cash,
        "final_equity": final,
        "net_pnl": round(final - result.starting_cash, 2),
        "return_pct": round((final / result.starting_cash - 1) * 100, 4),
        "analytics": summarise(realised, capital=result.starting_cash),
        "metrics": figures(
            equity=result.equity,
            fills=result.fills,
            realised=realised,
            decisions=result.decisions,
            starting=result.starting_cash,
            start=result.start,
            end=result.end,
            calendar=JOURNAL_CALENDAR,
        ),
        "positions": result.positions,
        "errors": result.errors,
    }


def _csv(rows: list[list[Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerows(rows)
    return out.getvalue().encode()


def write(result: BacktestResult, out: Path) -> list[Path]:
    """The run's files in ``out`` (created); their paths."""
    out.mkdir(parents=True, exist_ok=True)
    realised = realise(result.fills)
    data = summary(result, realised)
    account = f"backtest-{result.name}"
    files = {
        "summary.json": orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS),
        "orders.csv": _csv(
            [
                [
                    "created_at",
                    "id",
                    "symbol",
                    "intent",
                    "quantity",
                    "order_type",
                    "limit_price",
                    "stop_price",
                    "strategy",
                    "alert_id",
                    "status",
                    "filled_quantity",
                    "avg_fill_price",
                ]
            ]
            + [
                [
                    o.created_at,
                    o.id,
                    o.request.symbol,
                    o.request.intent.value,
                    o.request.quantity,
                    o.request.order_type.value,
                    o.request.limit_price,
                    o.request.stop_price,
                    o.request.strategy,
                    o.request.alert_id,
                    o.status.value,
                    o.filled_quantity,
                    o.avg_fill_price,
                ]
                for o in result.orders
            ]
        ),
        "fills.csv": _csv(
            [
                [
                    "time",
                    "order_id",
                    "symbol",
                    "intent",
                    "quantity",
                    "price",
                    "commission",
                    "strategy",
                ]
            ]
            + [
                [
                    f.time,
                    f.order_id,
                    f.symbol,
                    f.intent.value,
                    f.quantity,
                    f.price,
                    f.commission,
                    f.strategy,
                ]
                for f in result.fills
            ]
        ),
        "fills_tradenote.csv": template_csv(
            result.fills, lambda _fill: account, ZoneInfo(DEFAULT_TZ)
        ).encode(),
        "equity.csv": _csv([["time", "equity"], *([t, e] for t, e in result.equity)]),
        "report.html": render(data, result.equity, realised.trips, result.errors),
    }
    paths = []
    for name, body in files.items():
        path = out / name
        path.write_bytes(body)
        paths.append(path)
    return paths
