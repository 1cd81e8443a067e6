"""TradeNote's day document, built from our fills: pure functions, no I/O.

TradeNote keeps one ``trades`` document per user per trading day. This module turns
fills into its executions (ids ``e{execTime}_{symbol}_{type}_{side}_{n}``), merges them
into what the document already holds (by our fill id: idempotent), and rebuilds the
round trips, the per-symbol blotter and the day's P&L exactly from the executions.

Round trips are flat-to-flat per (account, symbol), matched FIFO, long or short, with
scale-ins and partial closes.

Options go in as TradeNote's importers write them: ``type`` ``call``/``put`` (in every
execution and trade id too), the OCC symbol as ``symbol`` and ``symbolOriginal``, prices
per share and proceeds x the multiplier (100), so TradeNote's trade P&L (the sum of its
executions' proceeds) is in dollars. A closing fill at price 0 (expired worthless) is an
execution with proceeds 0. A day's ``grossProceeds`` is the P&L *realised that day*
(FIFO); a position still open at the end of a day is carried into the next day's
document under the same trade id (as TradeNote does for swing trades), with its open
lots in ``openLots``.
"""

from __future__ import annotations

import copy
import functools
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from app.models.instruments import InstrumentKind, multiplier_of, shared_registry
from app.models.orders import Fill, Intent
from app.portfolio.fifo import match
from app.sessions import trading_day

SIDES: dict[Intent, str] = {
    Intent.BUY: "B",
    Intent.SELL: "S",
    Intent.SELL_SHORT: "SS",
    Intent.BUY_TO_COVER: "BC",
}
BUY_SIDES = frozenset({"B", "BC"})
ASSET_TYPE = "stock"  # shares, and everything TradeNote has no better type for
CURRENCY = "USD"
FEE_FIELDS = ("sec", "taf", "nscc", "nasdaq", "ecnRemove", "ecnAdd")
EPS = 1e-9
#: The journal's calendar unless configured (TRADEROPS_JOURNAL_CALENDAR): US equities.
JOURNAL_CALENDAR = "XNYS"

Document = dict[str, Any]


# -- days -------------------------------------------------------------------------
# A fill's day is ``app.sessions.trading_day`` on the journal's calendar (its session
# date, pre- and after-market included); only dateUnix is in the user's time zone.
def day_unix(day: date, tz: ZoneInfo) -> int:
    """TradeNote's ``dateUnix``: midnight of ``day`` in the user's time zone, in seconds."""
    return int(datetime(day.year, day.month, day.day, tzinfo=tz).timestamp())


def day_from_unix(value: int, tz: ZoneInfo) -> date:
    return datetime.fromtimestamp(value, tz).date()


def parse_date(day: date) -> dict[str, str]:
    """TradeNote's ``date`` field: the trading day at 00:00 UTC, as a Parse Date."""
    iso = datetime(day.year, day.month, day.day, tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return {"__type": "Date", "iso": iso}


def settlement_day(day: date) -> date:
    """T+1 settlement (US equities since May 2024), skipping weekends."""
    nxt = day + timedelta(days=1)
    while nxt.weekday() >= 5:
        nxt += timedelta(days=1)
    return nxt


# -- instruments --------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TradeNoteInstrument:
    """How TradeNote names what a fill traded: its ``type`` and its ``symbol``; and the
    underlying analytics group by (an option's root, anything else's own symbol)."""

    type: str
    symbol: str
    underlying: str


@functools.lru_cache(maxsize=4096)
def instrument_of(symbol: str) -> TradeNoteInstrument:
    """``call``/``put`` with the compact OCC symbol for an option; ``stock`` otherwise.

    Futures stay ``stock`` for now (their proceeds carry the point value, so the dollars
    are right); docs/JOURNAL.md says what TradeNote's ``future`` type would need."""
    try:
        instrument = shared_registry().get(symbol)
    except ValueError:
        instrument = None
    if instrument is not None and instrument.kind is InstrumentKind.OPTION:
        assert instrument.right is not None and instrument.underlying is not None
        return TradeNoteInstrument(str(instrument.right), instrument.symbol, instrument.underlying)
    return TradeNoteInstrument(ASSET_TYPE, symbol_key(symbol), symbol)


def underlying_of(symbol: str) -> str:
    """An option's underlying (its OCC root), a share's own symbol."""
    return instrument_of(symbol).underlying


# -- executions ---------------------------------------------------------------------
def symbol_key(symbol: str) -> str:
    """TradeNote replaces dots in symbols (they are object keys in ``blotter``)."""
    return symbol.replace(".", "_")


def execution_base(exec_time: int, symbol: str, side: str) -> str:
    """``e{execTime}_{symbol}_{type}_{side}`` (TradeNote's execution id before ``_n``)."""
    instrument = instrument_of(symbol)
    return f"e{exec_time}_{instrument.symbol}_{instrument.type}_{side}"


def new_execution(
    fill: Fill, account: str, tz: ZoneInfo, exec_id: str, calendar: str = JOURNAL_CALENDAR
) -> Document:
    """A TradeNote execution for one fill (buys carry negative proceeds, sells positive).

    ``td`` is the fill's trading day on ``calendar`` at midnight in ``tz``."""
    side = SIDES[fill.intent]
    day = trading_day(fill.time, calendar)
    instrument = instrument_of(fill.symbol)
    # proceeds in dollars (x100 for an option); a fill at 0 (expired worthless) has none
    notional = round(fill.quantity * fill.price * multiplier_of(fill.symbol), 6)
    gross = -notional if side in BUY_SIDES else notional
    execution: Document = {
        "id": exec_id,
        "account": account,
        "broker": fill.broker,
        "td": day_unix(day, tz),
        "sd": day_unix(settlement_day(day), tz),
        "currency": CURRENCY,
        "type": instrument.type,
        "side": side,
        "strategy": "long" if side in ("B", "S") else "short",
        "symbol": instrument.symbol,
        "symbolOriginal": fill.symbol,
        "quantity": fill.quantity,
        "price": fill.price,
        "execTime": int(fill.time),
        "commission": fill.commission,
        "grossProceeds": gross,
        "netProceeds": round(gross - fill.commission, 6),
        "clrBroker": "",
        "liq": "",
        "note": fill.strategy,
        "trade": None,
        # ours (TradeNote ignores unknown keys): what makes the merge idempotent
        "fillId": fill.id,
        "orderId": fill.order_id,
        "time": fill.time,
    }
    for fee in FEE_FIELDS:
        execution[fee] = 0.0
    return execution


def merge_executions(
    existing: Iterable[Mapping[str, Any]],
    fills: Iterable[Fill],
    account_for: Callable[[Fill], str],
    tz: ZoneInfo,
    calendar: str = JOURNAL_CALENDAR,
) -> tuple[list[Document], int]:
    """Existing executions plus the fills not yet among them (matched by fill id).

    Ids already written never change; a new execution takes the next free ``_n`` for
    its second/symbol/side. Returns the merged list (time order) and how many were new.
    """
    merged = [dict(e) for e in existing]
    seen = {str(e["fillId"]) for e in merged if e.get("fillId")}
    used = {str(e.get("id")) for e in merged}
    added = 0
    for fill in sorted(fills, key=lambda f: (f.time, f.id)):
        if fill.id in seen:
            continue
        side = SIDES[fill.intent]
        base = execution_base(int(fill.time), fill.symbol, side)
        n = 1
        while f"{base}_{n}" in used:
            n += 1
        execution = new_execution(fill, account_for(fill), tz, f"{base}_{n}", calendar)
        merged.append(execution)
        used.add(execution["id"])
        seen.add(fill.id)
        added += 1
    merged.sort(key=_exec_order)
    return merged, added


def _exec_order(e: Mapping[str, Any]) -> tuple[float, str]:
    return (float(e.get("time") or e.get("execTime") or 0), str(e.get("id")))


# -- positions carried between days ---------------------------------------------------
@dataclass
class OpenTrip:
    """A round trip that is still open: its identity, totals so far and FIFO lots."""

    id: str
    account: str
    broker: str
    symbol: str
    long: bool
    entry_time: int
    origin_td: int
    buy_quantity: float = 0.0
    sell_quantity: float = 0.0
    entry_quantity: float = 0.0
    entry_notional: float = 0.0
    exit_quantity: float = 0.0
    exit_notional: float = 0.0
    lots: deque[list[float]] = field(default_factory=deque)  # [signed qty, price]
    entry_price: float = 0.0  # the first execution's price (TradeNote's entryPrice)
    symbol_original: str = ""
    type: str = ASSET_TYPE  # TradeNote's stock / call / put

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "account": self.account,
            "broker": self.broker,
            "symbol": self.symbol,
            "long": self.long,
            "entryTime": self.entry_time,
            "originTd": self.origin_td,
            "buyQuantity": self.buy_quantity,
            "sellQuantity": self.sell_quantity,
            "entryQuantity": self.entry_quantity,
            "entryNotional": self.entry_notional,
            "exitQuantity": self.exit_quantity,
            "exitNotional": self.exit_notional,
            "lots": [list(lot) for lot in self.lots],
            "entryPrice": self.entry_price,
            "symbolOriginal": self.symbol_original,
            "type": self.type,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OpenTrip:
        return cls(
            id=str(data["id"]),
            account=str(data["account"]),
            broker=str(data.get("broker", "")),
            symbol=str(data["symbol"]),
            long=bool(data["long"]),
            entry_time=int(data["entryTime"]),
            origin_td=int(data["originTd"]),
            buy_quantity=float(data["buyQuantity"]),
            sell_quantity=float(data["sellQuantity"]),
            entry_quantity=float(data["entryQuantity"]),
            entry_notional=float(data["entryNotional"]),
            exit_quantity=float(data["exitQuantity"]),
            exit_notional=float(data["exitNotional"]),
            lots=deque([float(q), float(p)] for q, p in data["lots"]),
            entry_price=float(data.get("entryPrice") or _average(data)),
            symbol_original=str(data.get("symbolOriginal") or data["symbol"]),
            type=str(data.get("type") or ASSET_TYPE),
        )


def _average(data: Mapping[str, Any]) -> float:
    quantity = float(data["entryQuantity"])
    return float(data["entryNotional"]) / quantity if quantity else 0.0


Positions = dict[str, OpenTrip]  # "account|symbol" -> open trip


def positions_to_json(positions: Positions) -> dict[str, Any]:
    return {key: trip.to_dict() for key, trip in sorted(positions.items())}


def positions_from_json(data: Mapping[str, Any] | None) -> Positions:
    return {key: OpenTrip.from_dict(value) for key, value in (data or {}).items()}


@dataclass
class _DayTrip:
    """One round trip's activity within one day's document."""

    trip: OpenTrip
    carried: bool
    executions: list[str] = field(default_factory=list)
    commission: float = 0.0
    realized: float = 0.0
    # TradeNote's split: the trip's first execution is its entry, every later one an exit
    entry_proceeds: float = 0.0
    entry_net: float = 0.0
    exit_proceeds: float = 0.0
    exit_net: float = 0.0
    closed: bool = False
    exit_time: int = 0
    exit_price: float = 0.0
    note: str = ""


@dataclass
class DayBuild:
    """What a day's executions produce."""

    executions: list[Document]
    trades: list[Document]
    blotter: dict[str, Document]
    pnl: Document
    open_positions: bool
    carry_out: Positions
    closed_carried: list[tuple[int, str, int]]  # (origin td, trade id, exit time)


def build_day(executions: list[Document], carry_in: Positions, td: int) -> DayBuild:
    """Round trips, blotter and P&L for one day from its executions and the open positions
    carried in from the day before. Executions are returned with ``trade`` set."""
    positions: Positions = {k: copy.deepcopy(v) for k, v in carry_in.items()}
    execs = [dict(e) for e in sorted(executions, key=_exec_order)]
    day_trips: list[_DayTrip] = []
    active: dict[str, _DayTrip] = {}
    closed_carried: list[tuple[int, str, int]] = []

    for e in execs:
        account = str(e.get("account", ""))
        symbol = str(e["symbol"])
        key = f"{account}|{symbol}"
        side = str(e["side"])
        qty = float(e["quantity"])
        price = float(e["price"])
        exec_time = int(e["execTime"])
        signed = qty if side in BUY_SIDES else -qty
        commission = float(e.get("commission") or 0.0)
        e["trade"] = None
        remaining = signed
        first_leg = True
        while abs(remaining) > EPS:
            dt = active.get(key)
            if dt is None:
                trip = positions.get(key)
                if trip is not None:
                    dt = _DayTrip(trip=trip, carried=True)
                else:
                    long = remaining > 0
                    kind = str(e.get("type") or ASSET_TYPE)
                    trip = OpenTrip(
                        id=f"t{exec_time}_{symbol}_{kind}_{'B' if long else 'SS'}",
                        account=account,
                        broker=str(e.get("broker", "")),
                        symbol=symbol,
                        long=long,
                        entry_time=exec_time,
                        origin_td=td,
                        entry_price=price,
                        symbol_original=str(e.get("symbolOriginal") or symbol),
                        type=kind,
                    )
                    positions[key] = trip
                    dt = _DayTrip(trip=trip, carried=False)
                active[key] = dt
                day_trips.append(dt)
            trip = dt.trip
            if e["trade"] is None:
                e["trade"] = trip.id
            dt.executions.append(str(e["id"]))
            if first_leg:
                dt.commission += commission
                dt.note = dt.note or str(e.get("note") or "")
                gross = float(e.get("grossProceeds") or 0.0)
                net = float(e.get("netProceeds") or 0.0)
                if not dt.carried and len(dt.executions) == 1:
                    dt.entry_proceeds += gross
                    dt.entry_net += net
                else:
                    dt.exit_proceeds += gross
                    dt.exit_net += net
                dt.exit_price = price
            first_leg = False
            opening = (remaining > 0) == trip.long
            if opening:
                trip.lots.append([remaining, price])
                _count(trip, remaining, price, entry=True)
                remaining = 0.0
                continue
            # closing FIFO against the open lots
            realised, remaining = match(
                trip.lots, remaining, price, functools.partial(_closed, trip, price)
            )
            dt.realized += realised * multiplier_of(trip.symbol_original)  # points -> dollars
            if not trip.lots:
                dt.closed = True
                dt.exit_time = exec_time
                del positions[key]
                del active[key]
                if dt.carried:
                    closed_carried.append((trip.origin_td, trip.id, exec_time))

    trades = [_trade_doc(dt, td) for dt in day_trips]
    blotter = _blotter(trades)
    pnl = _pnl(blotter)
    return DayBuild(
        executions=execs,
        trades=trades,
        blotter=blotter,
        pnl=pnl,
        open_positions=any(t["openPosition"] for t in trades),
        carry_out=positions,
        closed_carried=closed_carried,
    )


def _closed(trip: OpenTrip, price: float, signed: float) -> None:
    _count(trip, signed, price, entry=False)


def _count(trip: OpenTrip, signed: float, price: float, *, entry: bool) -> None:
    if signed > 0:
        trip.buy_quantity += signed
    else:
        trip.sell_quantity += -signed
    if entry:
        trip.entry_quantity += abs(signed)
        trip.entry_notional += abs(signed) * price
    else:
        trip.exit_quantity += abs(signed)
        trip.exit_notional += abs(signed) * price


def _r(value: float) -> float:
    return round(value, 6) + 0.0  # no -0.0 in documents


def _trade_doc(dt: _DayTrip, td: int) -> Document:
    trip = dt.trip
    gross = _r(dt.realized)
    net = _r(dt.realized - dt.commission)
    closed = dt.closed
    shares = trip.buy_quantity if closed else 0.0
    gross_share = _r(gross / shares) if shares else 0.0
    net_share = _r(net / shares) if shares else 0.0
    doc: Document = {
        "id": trip.id,
        "account": trip.account,
        "broker": trip.broker,
        "td": td,
        "currency": CURRENCY,
        "type": trip.type,
        "side": "B" if trip.long else "SS",
        "strategy": "long" if trip.long else "short",
        "symbol": trip.symbol,
        "symbolOriginal": trip.symbol_original or trip.symbol,
        "buyQuantity": _r(trip.buy_quantity),
        "sellQuantity": _r(trip.sell_quantity),
        "entryTime": trip.entry_time,
        "exitTime": dt.exit_time if closed else 0,
        "entryPrice": _r(trip.entry_price),
        "exitPrice": _r(dt.exit_price) if closed else 0,
        "commission": _r(dt.commission),
        "commissionOpen": 0,
        "clrBroker": "",
        "liq": "",
        "grossEntryProceeds": _r(dt.entry_proceeds),
        "grossEntryProceedsOpen": 0,
        "grossExitProceeds": _r(dt.exit_proceeds),
        "grossExitProceedsOpen": 0,
        "grossProceeds": gross,
        "grossProceedsOpen": 0,
        "netEntryProceeds": _r(dt.entry_net),
        "netEntryProceedsOpen": 0,
        "netExitProceeds": _r(dt.exit_net),
        "netExitProceedsOpen": 0,
        "netProceeds": net,
        "netProceedsOpen": 0,
        "executionsCount": len(dt.executions),
        "tradesCount": 1 if closed else 0,
        "note": dt.note,
        "executions": list(dt.executions),
        "openPosition": not closed,
    }
    for fee in FEE_FIELDS:
        doc[fee] = 0
        doc[f"{fee}Open"] = 0
    for prefix, value, share in (("gross", gross, gross_share), ("net", net, net_share)):
        win = closed and value >= 0
        loss = closed and value < 0
        doc[f"{prefix}Wins"] = value if win else 0
        doc[f"{prefix}Loss"] = value if loss else 0
        doc[f"{prefix}SharePL"] = share
        doc[f"{prefix}SharePLWins"] = share if win else 0
        doc[f"{prefix}SharePLLoss"] = share if loss else 0
        doc[f"{prefix}Status"] = "win" if win else ("loss" if loss else None)
        doc[f"{prefix}WinsQuantity"] = _r(trip.buy_quantity) if win else 0
        doc[f"{prefix}LossQuantity"] = _r(trip.buy_quantity) if loss else 0
        doc[f"{prefix}WinsCount"] = 1 if win else 0
        doc[f"{prefix}LossCount"] = 1 if loss else 0
    if not closed:
        doc["openLots"] = [[_r(q), p] for q, p in trip.lots]
    return doc


_SUMMED = (
    "buyQuantity", "sellQuantity", "commission", "sec", "taf", "nscc", "nasdaq",
    "grossProceeds", "grossWins", "grossLoss", "grossSharePL", "grossSharePLWins",
    "grossSharePLLoss", "netProceeds", "netWins", "netLoss", "netSharePL",
    "netSharePLWins", "netSharePLLoss", "grossWinsQuantity", "grossLossQuantity",
    "grossWinsCount", "grossLossCount", "netWinsQuantity", "netLossQuantity",
    "netWinsCount", "netLossCount",
)  # fmt: skip


def _sum_into(target: Document, source: Mapping[str, Any]) -> None:
    for name in _SUMMED:
        target[name] = target.get(name, 0) + (source.get(name) or 0)


def _finish(doc: Document) -> Document:
    return {k: (_r(v) if isinstance(v, float) else v) for k, v in doc.items()}


def _blotter(trades: list[Document]) -> dict[str, Document]:
    """TradeNote's blotter: per symbol, sums over that day's round trips."""
    blotter: dict[str, Document] = {}
    for trade in sorted(trades, key=lambda t: t["entryTime"]):
        row = blotter.setdefault(
            trade["symbol"],
            {
                "symbol": trade["symbol"],
                "type": trade["type"],
                "executions": 0,
                "trades": 0,
                "otherCommission": 0,
                "fees": 0,
                "highGrossSharePLWin": 0,
                "highGrossSharePLLoss": 0,
                "highNetSharePLWin": 0,
                "highNetSharePLLoss": 0,
            },
        )
        _sum_into(row, trade)
        other = trade["sec"] + trade["taf"] + trade["nscc"] + trade["nasdaq"]
        row["otherCommission"] += other
        row["fees"] += trade["commission"] + other
        row["executions"] += trade["executionsCount"]
        row["trades"] += trade["tradesCount"]
        for prefix in ("gross", "net"):
            share = trade[f"{prefix}SharePL"]
            if share >= 0 and share > row[f"high{prefix.title()}SharePLWin"]:
                row[f"high{prefix.title()}SharePLWin"] = share
            if share < 0 and share < row[f"high{prefix.title()}SharePLLoss"]:
                row[f"high{prefix.title()}SharePLLoss"] = share
    return {symbol: _finish(row) for symbol, row in blotter.items()}


def _pnl(blotter: Mapping[str, Document]) -> Document:
    """TradeNote's pAndL: the day's sums over the blotter."""
    pnl: Document = {
        "executions": 0,
        "trades": 0,
        "otherCommission": 0,
        "fees": 0,
        "highGrossSharePLWin": 0,
        "highGrossSharePLLoss": 0,
        "highNetSharePLWin": 0,
        "highNetSharePLLoss": 0,
    }
    for row in blotter.values():
        _sum_into(pnl, row)
        for name in ("executions", "trades", "otherCommission", "fees"):
            pnl[name] += row[name]
        for prefix in ("Gross", "Net"):
            pnl[f"high{prefix}SharePLWin"] = max(
                pnl[f"high{prefix}SharePLWin"], row[f"high{prefix}SharePLWin"]
            )
            pnl[f"high{prefix}SharePLLoss"] = min(
                pnl[f"high{prefix}SharePLLoss"], row[f"high{prefix}SharePLLoss"]
            )
    return _finish(pnl)


def day_fields(build: DayBuild, day: date) -> Document:
    """The fields of the ``trades`` document that the journal owns."""
    return {
        "date": parse_date(day),
        "executions": build.executions,
        "trades": build.trades,
        "blotter": build.blotter,
        "pAndL": build.pnl,
        "openPositions": build.open_positions,
    }


class InvalidDayDocument(ValueError):
    """A day document TradeNote's UI cannot show (it would spin forever or show NaN)."""


def check_day_document(fields: Mapping[str, Any], date_unix: int) -> None:
    """What TradeNote's UI needs of a day document: every trade's ``td`` is the document's
    ``dateUnix`` (else every page spins forever), ``strategy`` is long or short, and every
    summed figure is a number."""
    for trade in fields.get("trades") or []:
        if trade.get("td") != date_unix:
            raise InvalidDayDocument(
                f"trade {trade.get('id')}: td {trade.get('td')} != dateUnix {date_unix}"
            )
        if trade.get("strategy") not in ("long", "short"):
            raise InvalidDayDocument(f"trade {trade.get('id')}: strategy {trade.get('strategy')!r}")
        for name in ("grossProceeds", "netProceeds", "commission", "buyQuantity", "sellQuantity"):
            value = trade.get(name)
            if not isinstance(value, int | float) or isinstance(value, bool) or value != value:
                raise InvalidDayDocument(f"trade {trade.get('id')}: {name} = {value!r}")


def close_carried_trade(doc: Mapping[str, Any], trade_id: str, exit_time: int) -> Document | None:
    """The origin day's fields after its open trade was closed on a later day (or None
    when nothing changes): ``openPosition`` false and the exit time, like TradeNote."""
    trades = [dict(t) for t in doc.get("trades") or []]
    changed = False
    for trade in trades:
        if trade.get("id") == trade_id and trade.get("openPosition"):
            trade["openPosition"] = False
            trade["exitTime"] = exit_time
            changed = True
    if not changed:
        return None
    return {"trades": trades, "openPositions": any(t.get("openPosition") for t in trades)}
