"""The one place that turns Tradier's JSON into plain values and our models.

Tradier serialises from XML, which leaves three quirks every caller must survive:

* a collection with one item is an object, with several a list, and an empty one
  the string ``"null"`` (or JSON ``null``) -- at any level of nesting;
* numbers sometimes arrive as strings (streaming events) or as ``"NaN"``;
* times are epoch milliseconds (quotes, events), epoch seconds (timesales),
  dates in America/New_York, or (option greeks' ``updated_at``) a UTC wall time.

``collection`` handles the first quirk and is used for every envelope; ``num`` and
``integer`` handle the second; the ``*_from_*`` mappers handle the third.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from app.models.market import Bar, Quote, Resolution, SymbolInfo
from app.models.occ import OptionRight, parse_occ
from app.options.chain import OptionChain, OptionQuote

NEW_YORK = ZoneInfo("America/New_York")
_EMPTY = (None, "null", "")

# Tradier's one-letter exchange codes for the venues a chart user recognises.
EXCHANGES = {
    "A": "AMEX",
    "B": "NASDAQ",
    "I": "ISE",
    "N": "NYSE",
    "P": "NYSEARCA",
    "Q": "NASDAQ",
    "S": "NASDAQ",
    "T": "NASDAQ",
    "U": "OTC",
    "V": "OTC",
    "W": "CBOE",
    "Y": "BATS",
    "Z": "BATS",
}
# Tradier security types -> TradingView symbol types.
TYPES = {"stock": "stock", "etf": "fund", "index": "index", "mutual_fund": "fund"}


def collection(body: Any, *path: str) -> list[Any]:
    """Items found under ``path``: ``[]`` for a missing/``"null"`` level, ``[x]`` for one item.

    ``collection({"quotes": {"quote": {...}}}, "quotes", "quote")`` -> ``[{...}]``
    ``collection({"history": "null"}, "history", "day")`` -> ``[]``
    """
    node = body
    for key in path:
        if not isinstance(node, dict):
            return []
        node = node.get(key)
    if isinstance(node, list):
        return [item for item in node if item not in _EMPTY]
    if node in _EMPTY:
        return []
    return [node]


def first(body: Any, *path: str) -> dict[str, Any]:
    """The single object under ``path`` (``{}`` when absent): for clock, stream session..."""
    items = collection(body, *path)
    return items[0] if items and isinstance(items[0], dict) else {}


def num(value: Any) -> float | None:
    """A finite float from a number or numeric string; ``None`` for null, "", "NaN"."""
    if value is None or isinstance(value, bool):
        return None
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result if math.isfinite(result) else None


def integer(value: Any, default: int = 0) -> int:
    result = num(value)
    return default if result is None else int(result)


def epoch_ms(value: Any) -> float | None:
    """Seconds from Tradier's epoch-millisecond fields (``trade_date``, ``biddate``...)."""
    ms = num(value)
    return ms / 1000.0 if ms else None


def error_message(text: str, limit: int = 200) -> str:
    """The human part of an error body: ``fault.faultstring``, ``errors.error`` or the text."""
    try:
        body = orjson.loads(text)
    except orjson.JSONDecodeError:
        return " ".join(text.split())[:limit]
    fault = first(body, "fault")
    if fault.get("faultstring"):
        return str(fault["faultstring"])[:limit]
    errors = collection(body, "errors", "error")
    if errors:
        return "; ".join(map(str, errors))[:limit]
    return " ".join(text.split())[:limit]


# -- quotes --------------------------------------------------------------------------
def quote_from_rest(raw: dict[str, Any], now: float) -> Quote | None:
    """A ``Quote`` from one item of ``quotes.quote``; ``None`` when it has no price at all."""
    bid, ask = num(raw.get("bid")), num(raw.get("ask"))
    last = num(raw.get("last"))
    if last is None:
        last = num(raw.get("close")) or num(raw.get("prevclose"))
    if last is None and bid is not None and ask is not None:
        last = (bid + ask) / 2
    if last is None:
        return None
    stamps = [epoch_ms(raw.get(k)) for k in ("trade_date", "bid_date", "ask_date")]
    seen = [s for s in stamps if s]
    symbol = raw.get("symbol")
    if not isinstance(symbol, str) or not symbol:
        return None
    return Quote(
        symbol=symbol,
        time=max(seen) if seen else now,
        last=last,
        bid=last if bid is None else bid,
        ask=last if ask is None else ask,
        bid_size=integer(raw.get("bidsize")),
        ask_size=integer(raw.get("asksize")),
        open=num(raw.get("open")),
        high=num(raw.get("high")),
        low=num(raw.get("low")),
        prev_close=num(raw.get("prevclose")),
        volume=integer(raw.get("volume")),
        change=num(raw.get("change")) or 0.0,
        change_pct=num(raw.get("change_percentage")) or 0.0,
    )


def quotes_from_rest(body: Any, now: float) -> tuple[list[Quote], list[str]]:
    """(quotes, unmatched symbols) from a ``/markets/quotes`` answer."""
    quotes = [
        q
        for raw in collection(body, "quotes", "quote")
        if isinstance(raw, dict) and (q := quote_from_rest(raw, now)) is not None
    ]
    unmatched = [str(s) for s in collection(body, "quotes", "unmatched_symbols", "symbol")]
    return quotes, unmatched


# -- options ---------------------------------------------------------------------------
def expiration_dates(body: Any) -> list[date]:
    """Dates from ``/markets/options/expirations``, soonest first (``[]``: no options).

    ``{"expirations": {"date": [...]}}``, one date as a bare string, ``null`` for none;
    with ``strikes``/``expirationType`` asked for, ``{"expiration": [{"date": ...}]}``.
    """
    raw = collection(body, "expirations", "date")
    raw += [
        item.get("date")
        for item in collection(body, "expirations", "expiration")
        if isinstance(item, dict)
    ]
    found: set[date] = set()
    for value in raw:
        try:
            found.add(date.fromisoformat(str(value)))
        except ValueError:
            continue  # garbage in the list: skip it rather than fail the whole answer
    return sorted(found)


def greeks_time(value: Any) -> float | None:
    """Epoch seconds of greeks' ``updated_at``.

    Tradier documents it only as "Date volatility data was last updated" and sends a
    zone-less ``YYYY-MM-DD HH:MM:SS``; it is UTC (ORATS stamps in UTC: its published
    samples read 20:56 for a mid-afternoon New York update). An offset, if ever sent, is
    honoured; epoch numbers (seconds or milliseconds) are accepted too.
    """
    if value in _EMPTY:
        return None
    stamp = num(value)
    if stamp is not None:
        return stamp / 1000.0 if stamp > 1e11 else stamp
    try:
        when = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _right(raw: dict[str, Any], fallback: OptionRight) -> OptionRight:
    kind = str(raw.get("option_type") or "").lower()
    return OptionRight(kind) if kind in ("call", "put") else fallback


def _positive(value: Any) -> float | None:
    """An implied volatility: ORATS sends 0.0 where it has none."""
    result = num(value)
    return result if result else None


def option_quote(raw: dict[str, Any], underlying: str) -> OptionQuote | None:
    """An ``OptionQuote`` from one ``options.option`` item; None without a valid symbol.

    The strike is the OCC symbol's (exact); expiration and right the item's fields when
    present, else the symbol's; greeks may be ``null``, missing, partly missing or numeric strings.
    """
    symbol = str(raw.get("symbol") or "").strip().upper()
    try:
        occ = parse_occ(symbol)
    except ValueError:
        return None
    try:
        expiration = date.fromisoformat(str(raw.get("expiration_date") or occ.expiry))
    except ValueError:
        expiration = occ.expiry
    whole = occ.strike == occ.strike.to_integral_value()  # 600 rather than 600.000
    strike = occ.strike.quantize(Decimal(1)) if whole else occ.strike.normalize()
    greeks = raw.get("greeks")
    g: dict[str, Any] = greeks if isinstance(greeks, dict) else {}
    iv = _positive(g.get("mid_iv")) or _positive(g.get("smv_vol"))
    return OptionQuote(
        symbol=symbol,
        underlying=str(raw.get("underlying") or underlying).upper(),
        expiration=expiration,
        right=_right(raw, occ.right),
        strike=strike,
        bid=num(raw.get("bid")),
        ask=num(raw.get("ask")),
        last=num(raw.get("last")),
        volume=integer(raw.get("volume")),
        open_interest=integer(raw.get("open_interest")),
        delta=num(g.get("delta")),
        gamma=num(g.get("gamma")),
        theta=num(g.get("theta")),
        vega=num(g.get("vega")),
        iv=iv,
        greeks_time=greeks_time(g.get("updated_at")) if g else None,
    )


def option_chain(
    body: Any, underlying: str, expiration: date, now: float, underlying_price: float | None
) -> OptionChain:
    """The chain from ``/markets/options/chains`` (empty when Tradier answered ``null``).

    Contracts of other expirations (never expected) are dropped; calls then puts, by strike.
    """
    quotes = [
        q
        for raw in collection(body, "options", "option")
        if isinstance(raw, dict)
        and (q := option_quote(raw, underlying)) is not None
        and q.expiration == expiration
    ]
    quotes.sort(key=lambda q: (q.right is not OptionRight.CALL, q.strike, q.symbol))
    return OptionChain(
        underlying=underlying,
        expiration=expiration,
        underlying_price=underlying_price,
        quotes=tuple(quotes),
        fetched_at=now,
    )


# -- bars ------------------------------------------------------------------------------
def _bar(time: int, raw: dict[str, Any]) -> Bar | None:
    close = num(raw.get("close"))
    if close is None:
        close = num(raw.get("price"))
    if close is None:
        return None
    open_ = num(raw.get("open"))
    open_ = close if open_ is None else open_
    high = num(raw.get("high"))
    low = num(raw.get("low"))
    return Bar(
        time=time,
        open=open_,
        high=max(open_, close) if high is None else high,
        low=min(open_, close) if low is None else low,
        close=close,
        volume=num(raw.get("volume")) or 0.0,
    )


def history_bars(body: Any, resolution: Resolution) -> list[Bar]:
    """Bars from ``/markets/history``: each dated bar starts at 00:00 UTC of its period.

    That is the TradingView UDF convention for daily bars; weekly and monthly bars
    are snapped to the period start ``Resolution.bar_start`` defines.
    """
    bars = []
    for raw in collection(body, "history", "day"):
        try:
            day = date.fromisoformat(str(raw["date"]))
        except (KeyError, TypeError, ValueError):
            continue
        midnight = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())
        bar = _bar(resolution.bar_start(midnight), raw)
        if bar is not None:
            bars.append(bar)
    return bars


def timesales_bars(body: Any) -> list[Bar]:
    """Bars from ``/markets/timesales``, timed by the epoch ``timestamp``.

    ``time`` is a naive America/New_York wall time; it is only a fallback.
    """
    bars = []
    for raw in collection(body, "series", "data"):
        if not isinstance(raw, dict):
            continue
        stamp = num(raw.get("timestamp"))
        if stamp is None:
            try:
                local = datetime.fromisoformat(str(raw["time"]))
            except (KeyError, ValueError):
                continue
            stamp = local.replace(tzinfo=NEW_YORK).timestamp()
        bar = _bar(int(stamp), raw)
        if bar is not None:
            bars.append(bar)
    return bars


def new_york_minute(ts: int) -> str:
    """``YYYY-MM-DD HH:MM`` in America/New_York, the format timesales expects."""
    return datetime.fromtimestamp(ts, tz=NEW_YORK).strftime("%Y-%m-%d %H:%M")


def utc_date(ts: int) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d")


# -- symbols ---------------------------------------------------------------------------
def symbol_info(raw: dict[str, Any]) -> SymbolInfo | None:
    """``SymbolInfo`` from a lookup ``security`` (or a quote, which has the same fields)."""
    symbol = str(raw.get("symbol") or "").upper()
    if not symbol:
        return None
    code = str(raw.get("exchange") or raw.get("exch") or "")
    kind = str(raw.get("type") or "stock")
    return SymbolInfo(
        symbol=symbol,
        description=str(raw.get("description") or symbol),
        exchange=EXCHANGES.get(code, code or "US"),
        type=TYPES.get(kind, kind),
    )


def securities(body: Any) -> list[SymbolInfo]:
    return [
        info
        for raw in collection(body, "securities", "security")
        if isinstance(raw, dict) and (info := symbol_info(raw)) is not None
    ]


# -- clock and calendar ----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class MarketClock:
    date: str
    state: str  # premarket | open | postmarket | closed
    description: str
    timestamp: int
    next_state: str
    next_change: str  # HH:MM, America/New_York


@dataclass(frozen=True, slots=True)
class CalendarDay:
    date: str
    status: str  # open | closed
    description: str
    open_start: str | None  # HH:MM, America/New_York; None when closed
    open_end: str | None


def market_clock(body: Any) -> MarketClock:
    raw = first(body, "clock")
    return MarketClock(
        date=str(raw.get("date", "")),
        state=str(raw.get("state", "")),
        description=str(raw.get("description", "")),
        timestamp=integer(raw.get("timestamp")),
        next_state=str(raw.get("next_state", "")),
        next_change=str(raw.get("next_change", "")),
    )


def calendar_days(body: Any) -> list[CalendarDay]:
    days = []
    for raw in collection(body, "calendar", "days", "day"):
        if not isinstance(raw, dict):
            continue  # garbage in a day list: skip it rather than fail the whole calendar
        session = first(raw, "open")
        days.append(
            CalendarDay(
                date=str(raw.get("date", "")),
                status=str(raw.get("status", "")),
                description=str(raw.get("description", "")),
                open_start=session.get("start"),
                open_end=session.get("end"),
            )
        )
    return days


# -- streaming -------------------------------------------------------------------------
def stream_events(payload: str | bytes) -> list[dict[str, Any]]:
    """Events in one WebSocket frame: one JSON object per line with ``linebreak: true``.

    A malformed line is skipped rather than killing the stream; ``{"error": ...}``
    (a refused or expired session) is kept so the caller can start over.
    """
    if isinstance(payload, bytes):
        payload = payload.decode("utf-8", "replace")
    events = []
    for line in payload.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(event, dict) and (event.get("symbol") or event.get("error")):
            events.append(event)
    return events
