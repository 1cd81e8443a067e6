"""TradingView's alert log export, read: the CSV the Alerts panel's Log tab downloads
("Export", a file named like ``TradingView_Alerts_Log_2025-10-02_15ebb.csv``).

Its columns, read by their header (TradingView has added columns over time):

- ``Alert ID``: the id of the alert *definition* (every firing of one alert has the
  same one: it is not the firing's id, nor our ``alert_id``);
- ``Ticker``: the chart's symbol and interval, e.g. ``BINANCE:MATICUSDT, 1m``;
- ``Name``: the alert's name;
- ``Description``: the message as sent, here our JSON alert (quoted, with ``""`` for a
  quote, commas and new lines inside);
- ``Time``: when it fired, ISO 8601 in UTC with a ``Z`` (``2026-08-03T03:50:01Z``, older
  exports with milliseconds: ``2021-05-20T02:44:05.000Z``); an explicit offset is taken;
- ``Webhook status`` (newer exports only): what TradingView saw of the delivery.

Rows come newest first; ``read_log`` gives them oldest first. A row whose description
is not a JSON object, or is not an alert the webhook accepts (the same ``Alert`` model),
is a ``Rejected`` line with the webhook's reason, never an exception. Pure: no I/O
beyond ``load_log`` reading the file.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from app.models.alerts import Alert

DESCRIPTION = "Description"
TIME = "Time"
REQUIRED = (DESCRIPTION, TIME)
OPTIONAL = ("Alert ID", "Ticker", "Name", "Webhook status")


class TvLogError(Exception):
    """The file cannot be used at all (unreadable, not a CSV, without the needed columns)."""


@dataclass(frozen=True, slots=True)
class LogRow:
    """One firing whose message is an alert we accept."""

    line: int  # the row's first line in the file (the header is line 1)
    time: datetime  # when it fired (UTC)
    body: bytes  # the message, as TradingView sent it
    alert: Alert  # the message as the webhook reads it
    tv_alert_id: str = ""
    chart: str = ""  # the Ticker column: "EXCHANGE:SYMBOL, interval"
    name: str = ""
    webhook_status: str = ""


@dataclass(frozen=True, slots=True)
class Rejected:
    """A row that is not an alert we accept, and why (as the webhook would answer)."""

    line: int
    time: datetime | None
    reason: str
    text: str  # the description, shortened

    def describe(self) -> str:
        when = self.time.isoformat() if self.time else "?"
        return f"line {self.line} ({when}): {self.reason}: {self.text!r}"


def parse_time(text: str) -> datetime:
    """TradingView's Time column: ISO 8601, ``Z`` or an offset (none: taken as UTC)."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"time {text.strip()!r} is not ISO 8601") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


def alert_problem(body: bytes) -> tuple[Alert | None, str]:
    """The body as the webhook reads it: the alert, or the webhook's reason to refuse it."""
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, "the alert message is not JSON"
    if not isinstance(data, dict):
        return None, "the alert message must be a JSON object"
    try:
        return Alert.model_validate(data), ""
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False)
        )
        return None, f"invalid alert ({problems})"


def _header(fields: list[str] | None) -> dict[str, str]:
    """Our column name -> the file's (matched without case, spaces or a BOM)."""
    found = {(f or "").strip().lstrip("\ufeff").casefold(): f for f in fields or []}
    missing = [c for c in REQUIRED if c.casefold() not in found]
    if missing:
        names = ", ".join(repr((f or "").strip()) for f in fields or []) or "none"
        raise TvLogError(
            f"not a TradingView alert log: no {' or '.join(missing)} column (columns: {names})"
        )
    return {c: found[c.casefold()] for c in (*REQUIRED, *OPTIONAL) if c.casefold() in found}


def read_log(text: str) -> tuple[list[LogRow], list[Rejected]]:
    """Every row of an export: the alerts (oldest first, file order within a time) and the
    rejected rows (in file order)."""
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    try:
        columns = _header(list(reader.fieldnames or []))
    except csv.Error as exc:
        raise TvLogError(f"not a CSV file: {exc}") from None
    rows: list[LogRow] = []
    rejected: list[Rejected] = []
    line = reader.line_num + 1
    try:
        for record in reader:
            row = _row(record, columns, line)
            if isinstance(row, LogRow):
                rows.append(row)
            else:
                rejected.append(row)
            line = reader.line_num + 1
    except csv.Error as exc:
        raise TvLogError(f"line {line}: not a CSV row: {exc}") from None
    rows.sort(key=lambda r: r.time)  # stable: file order among equal times
    return rows, rejected


def _row(record: dict[str, Any], columns: dict[str, str], line: int) -> LogRow | Rejected:
    def cell(name: str) -> str:
        key = columns.get(name)
        value = record.get(key) if key is not None else None
        return value if isinstance(value, str) else ""

    description = cell(DESCRIPTION).strip()
    short = description if len(description) <= 80 else description[:77] + "..."
    try:
        when = parse_time(cell(TIME))
    except ValueError as exc:
        return Rejected(line, None, str(exc), short)
    body = description.encode()
    alert, problem = alert_problem(body)
    if alert is None:
        return Rejected(line, when, problem, short)
    return LogRow(
        line=line,
        time=when,
        body=body,
        alert=alert,
        tv_alert_id=cell("Alert ID").strip(),
        chart=cell("Ticker").strip(),
        name=cell("Name").strip(),
        webhook_status=cell("Webhook status").strip(),
    )


def load_log(path: Path) -> tuple[list[LogRow], list[Rejected]]:
    """``read_log`` of a file (UTF-8, with or without a BOM)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise TvLogError(f"{path}: cannot read: {exc}") from None
    return read_log(text)
