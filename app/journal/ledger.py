"""Our own fill ledger (the fills stream) read by time, and TradeNote's Template CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from redis.asyncio import Redis

from app.bus import Keys
from app.journal.tradenote import (
    ASSET_TYPE,
    JOURNAL_CALENDAR,
    SIDES,
    instrument_of,
    settlement_day,
)
from app.models.instruments import multiplier_of
from app.models.orders import Fill
from app.sessions import get_sessions, trading_day

TEMPLATE_COLUMNS = [
    "Account", "T/D", "S/D", "Currency", "Type", "Side", "Symbol", "Qty", "Price",
    "Exec Time", "Comm", "SEC", "TAF", "NSCC", "Nasdaq", "ECN Remove", "ECN Add",
    "Gross Proceeds", "Net Proceeds", "Clr Broker", "Liq", "Note",
]  # fmt: skip
SLACK_MS = 86_400_000  # stream ids are insertion times: allow for clock skew


async def read_fills(
    redis: Redis, start: float | None = None, end: float | None = None, *, chunk: int = 5000
) -> list[Fill]:
    """Fills with ``start <= time < end`` (all when None), in time order, unique by id."""
    # A fill is appended when it happens or later (a late broker report, a backfill), so
    # its entry id (insertion time) is >= its time: bound the scan below only.
    lo: str = "-" if start is None else f"{max(0, int(start * 1000) - SLACK_MS)}"
    hi = "+"
    fills: dict[str, Fill] = {}
    cursor = lo
    while True:
        batch: Any = await redis.xrange(Keys.FILLS_STREAM, min=cursor, max=hi, count=chunk)
        if not batch:
            break
        for _entry_id, fields in batch:
            raw = fields.get(b"fill") if fields else None
            if raw is None:
                continue
            try:
                fill = Fill.model_validate_json(raw)
            except (ValidationError, ValueError):
                continue
            if (start is None or fill.time >= start) and (end is None or fill.time < end):
                fills.setdefault(fill.id, fill)
        last = batch[-1][0]
        cursor = "(" + (last.decode() if isinstance(last, bytes) else str(last))
        if len(batch) < chunk:
            break
    return sorted(fills.values(), key=lambda f: (f.time, f.id))


def day_bounds(first: date, last: date, calendar: str) -> tuple[float, float]:
    """Unix seconds [lo, hi) of the fills whose trading day on ``calendar`` is in
    [first, last] (a Monday's start includes the weekend before it)."""
    return get_sessions(calendar).bounds(first, last)


def _num(value: float) -> str:
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def template_csv(
    fills: Iterable[Fill], account_for: Any, tz: ZoneInfo, calendar: str = JOURNAL_CALENDAR
) -> str:
    """TradeNote's Template CSV (the importer's generic format), one row per fill: T/D
    is the trading day on ``calendar``, Exec Time the wall time in ``tz``.

    An option's row has Type ``call``/``put``, its OCC symbol, Qty in contracts, Price
    per share and the proceeds in dollars (x100): TradeNote's template importer takes
    Gross/Net Proceeds as they are and sums them into the trade's P&L."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(TEMPLATE_COLUMNS)
    for fill in fills:
        side = SIDES[fill.intent]
        local = datetime.fromtimestamp(fill.time, tz)
        day = trading_day(fill.time, calendar)
        instrument = instrument_of(fill.symbol)
        notional = fill.quantity * fill.price * multiplier_of(fill.symbol)
        gross = -notional if side in ("B", "BC") else notional
        writer.writerow(
            [
                account_for(fill),
                day.strftime("%m/%d/%Y"),
                settlement_day(day).strftime("%m/%d/%Y"),
                "USD",
                instrument.type,
                side,
                fill.symbol if instrument.type == ASSET_TYPE else instrument.symbol,
                fill.quantity,
                _num(fill.price),
                local.strftime("%H:%M:%S"),
                _num(fill.commission),
                "0",
                "0",
                "0",
                "0",
                "0",
                "0",
                _num(gross),
                _num(gross - fill.commission),
                "",
                "",
                fill.strategy,
            ]
        )
    return out.getvalue()
