"""A local server that speaks Tradier's documented API, quirks included.

The live service cannot be reached from tests, so this stands in for it on a free
loopback port. What it reproduces, because our connector must survive it:

* XML unless the request sends ``Accept: application/json``;
* ``401 Invalid Access Token`` for a wrong bearer token;
* a one-item collection as an object, an empty one as the string ``"null"``;
* a per-window request quota with ``X-Ratelimit-*`` headers, and 429 past it;
* scripted faults per path (status, headers, delay) to exercise retries;
* the streaming handshake: ``POST /markets/events/session`` then a WebSocket that
  takes ``{"symbols","sessionid","filter","linebreak"}``; a session id works once;
* option expirations and chains (``list_options``): one date or one contract as a bare
  value, ``null`` (``options_empty``) for none, greeks ``null`` on contracts ORATS has
  not priced; chains priced by a small Black-Scholes of this module's own (an oracle
  for tests, independent of the simulated feed's model).

Broker tests add endpoints with ``fake.route("POST", "/accounts/{account_id}/orders",
handler)``: every route gets the same auth, Accept, quota, fault and recording
handling, and a handler just returns the payload (dicts/lists) to render.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

from aiohttp import WSCloseCode, WSMsgType, web

NEW_YORK = ZoneInfo("America/New_York")
API_PREFIX = "/v1"
STREAM_PATH = "/v1/markets/events"

Handler = Callable[[web.Request], Awaitable[Any]]


def one_or_many(items: list[Any]) -> Any:
    """Tradier's collection encoding: ``"null"`` when empty, the item alone when one."""
    if not items:
        return "null"
    return items[0] if len(items) == 1 else items


def to_xml(payload: Any) -> str:
    """Tradier's default (non-JSON) representation of a payload."""

    def node(tag: str, value: Any) -> str:
        if isinstance(value, list):
            return "".join(node(tag, item) for item in value)
        if isinstance(value, dict):
            inner = "".join(node(k, v) for k, v in value.items())
        elif value is None:
            inner = ""
        else:
            inner = escape(str(value).lower() if isinstance(value, bool) else str(value))
        return f"<{tag}>{inner}</{tag}>"

    body = "".join(node(k, v) for k, v in payload.items()) if isinstance(payload, dict) else ""
    return f'<?xml version="1.0" encoding="UTF-8"?>{body}'


# -- sample data in Tradier's shapes ---------------------------------------------------
def tradier_quote(symbol: str, last: float | None, **overrides: Any) -> dict[str, Any]:
    """A ``quotes.quote`` item with every documented equity field."""
    ms = 1_715_000_000_000
    quote: dict[str, Any] = {
        "symbol": symbol,
        "description": f"{symbol} Inc",
        "exch": "Q",
        "type": "stock",
        "last": last,
        "change": None if last is None else round(last - 100.0, 2),
        "volume": 1_234_567,
        "open": 99.5,
        "high": 101.25,
        "low": 98.75,
        "close": None,
        "bid": None if last is None else round(last - 0.01, 2),
        "ask": None if last is None else round(last + 0.01, 2),
        "change_percentage": None if last is None else round((last - 100.0), 2),
        "average_volume": 2_000_000,
        "last_volume": 100,
        "trade_date": ms,
        "prevclose": 100.0,
        "week_52_high": 120.0,
        "week_52_low": 80.0,
        "bidsize": 3,
        "bidexch": "Q",
        "bid_date": ms - 500,
        "asksize": 5,
        "askexch": "Z",
        "ask_date": ms - 250,
        "root_symbols": symbol,
    }
    quote.update(overrides)
    return quote


def history_rows(days: Iterable[date], base: float = 100.0) -> list[dict[str, Any]]:
    """``history.day`` rows, a rising price per day."""
    rows = []
    for i, day in enumerate(days):
        price = base + i
        rows.append(
            {
                "date": day.isoformat(),
                "open": price,
                "high": price + 2,
                "low": price - 1,
                "close": price + 1,
                "volume": 1000 + i,
            }
        )
    return rows


def timesales_rows(
    start: int, count: int, minutes: int, base: float = 50.0
) -> list[dict[str, Any]]:
    """``series.data`` rows every ``minutes`` from epoch ``start``: ``time`` is New York
    wall time (as Tradier sends it), ``timestamp`` the epoch."""
    rows = []
    for i in range(count):
        ts = start + i * minutes * 60
        price = base + i
        rows.append(
            {
                "time": datetime.fromtimestamp(ts, NEW_YORK).strftime("%Y-%m-%dT%H:%M:%S"),
                "timestamp": ts,
                "price": price + 0.5,
                "open": price,
                "high": price + 1,
                "low": price - 1,
                "close": price + 0.5,
                "volume": 10 * (i + 1),
                "vwap": price + 0.25,
            }
        )
    return rows


def _norm_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _norm_pdf(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def bs_row(
    right: str, spot: float, strike: float, years: float, vol: float, rate: float
) -> dict[str, float]:
    """Black-Scholes price and greeks (theta per day, vega per vol point), no dividend."""
    sd = vol * math.sqrt(years)
    d1 = (math.log(spot / strike) + (rate + 0.5 * vol * vol) * years) / sd
    d2 = d1 - sd
    disc = math.exp(-rate * years)
    if right == "call":
        price = spot * _norm_cdf(d1) - strike * disc * _norm_cdf(d2)
        delta = _norm_cdf(d1)
        theta = -spot * _norm_pdf(d1) * vol / (
            2 * math.sqrt(years)
        ) - rate * strike * disc * _norm_cdf(d2)
    else:
        price = strike * disc * _norm_cdf(-d2) - spot * _norm_cdf(-d1)
        delta = _norm_cdf(d1) - 1.0
        theta = -spot * _norm_pdf(d1) * vol / (
            2 * math.sqrt(years)
        ) + rate * strike * disc * _norm_cdf(-d2)
    return {
        "price": price,
        "delta": delta,
        "gamma": _norm_pdf(d1) / (spot * sd),
        "theta": theta / 365.0,
        "vega": spot * _norm_pdf(d1) * math.sqrt(years) / 100.0,
    }


def occ(underlying: str, expiration: date, right: str, strike: float) -> str:
    return f"{underlying}{expiration:%y%m%d}{right[0].upper()}{round(strike * 1000):08d}"


def tradier_option(
    underlying: str,
    expiration: date,
    right: str,
    strike: float,
    *,
    spot: float,
    years: float,
    vol: float = 0.25,
    rate: float = 0.04,
    updated_at: str = "2026-12-07 17:59:59",
) -> dict[str, Any]:
    """An ``options.option`` item with every documented field and ORATS greeks."""
    g = bs_row(right, spot, strike, years, vol, rate)
    price = round(g["price"], 2)
    bid = max(0.0, round(price - 0.05, 2))
    ms = 1_765_130_000_000
    return {
        "symbol": occ(underlying, expiration, right, strike),
        "description": f"{underlying} {expiration:%b %d %Y} ${strike:.2f} {right.title()}",
        "exch": "Z",
        "type": "option",
        "last": price,
        "change": 0.0,
        "volume": 100 + int(strike) % 50,
        "open": None,
        "high": None,
        "low": None,
        "close": None,
        "bid": bid,
        "ask": round(price + 0.05, 2),
        "underlying": underlying,
        "strike": strike,
        "greeks": {
            "delta": g["delta"],
            "gamma": g["gamma"],
            "theta": g["theta"],
            "vega": g["vega"],
            "rho": 0.0,
            "phi": 0.0,
            "bid_iv": vol - 0.01,
            "mid_iv": vol,
            "ask_iv": vol + 0.01,
            "smv_vol": vol,
            "updated_at": updated_at,
        },
        "change_percentage": 0.0,
        "average_volume": 0,
        "last_volume": 1,
        "trade_date": ms,
        "prevclose": price,
        "week_52_high": 0.0,
        "week_52_low": 0.0,
        "bidsize": 10,
        "bidexch": "Z",
        "bid_date": ms,
        "asksize": 12,
        "askexch": "Z",
        "ask_date": ms,
        "open_interest": 1000 + int(strike) % 300,
        "contract_size": 100,
        "expiration_date": expiration.isoformat(),
        "expiration_type": "standard",
        "option_type": right,
        "root_symbol": underlying,
    }


# -- recording and scripting --------------------------------------------------------
@dataclass
class Recorded:
    method: str
    path: str  # without the /v1 prefix
    query: dict[str, str]
    headers: dict[str, str]
    status: int = 0


@dataclass
class Fault:
    """The next ``times`` requests to ``path`` sleep ``delay`` then answer ``status``
    (``status=None``: after the delay, answer normally). ``method`` narrows it to one
    HTTP method (``None``: any)."""

    path: str
    status: int | None = 500
    times: int = 1
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    body: str = "Internal Server Error"
    method: str | None = None


@dataclass
class Quota:
    allowed: int
    window: float
    prefix: str = "/markets"
    used: int = 0
    resets_at: float = 0.0


@dataclass
class Subscription:
    sessionid: str
    symbols: list[str]
    filter: list[str] | None
    linebreak: bool


class FakeTradier:
    """Tradier's REST API under ``/v1`` and its market event WebSocket, on 127.0.0.1."""

    def __init__(self, token: str = "fake-token") -> None:
        self.token = token
        self.quotes: dict[str, dict[str, Any]] = {}
        self.history: dict[tuple[str, str], list[dict[str, Any]]] = {}  # (symbol, interval)
        self.timesales: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.securities: list[dict[str, Any]] = []
        self.clock: dict[str, Any] = {
            "date": "2024-05-06",
            "description": "Market is open from 09:30 to 16:00",
            "state": "open",
            "timestamp": 1_715_003_000,
            "next_change": "16:00",
            "next_state": "postmarket",
        }
        self.calendars: dict[tuple[int, int], list[dict[str, Any]]] = {}
        self.option_expirations: dict[str, list[str]] = {}  # underlying -> YYYY-MM-DD
        self.option_chains: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.options_empty: Any = None  # Tradier's "none": JSON null (or "null")
        self.requests: list[Recorded] = []
        self.faults: list[Fault] = []
        self.quota: Quota | None = None
        self.sessions: dict[str, bool] = {}  # session id -> already used
        self.subscriptions: list[Subscription] = []
        self.refuse_subscriptions = 0  # answer the next N with {"error": ...} and close
        self.refusals: list[str] = []
        self._sockets: dict[web.WebSocketResponse, Subscription] = {}
        self._changed = asyncio.Condition()
        self.app = web.Application(middlewares=[self._middleware])
        self.app.router.add_get(STREAM_PATH, self._stream)
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._market_routes()

    # -- lifecycle ------------------------------------------------------------------
    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = int(self._runner.addresses[0][1])

    async def close(self) -> None:
        await self.drop_streams()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{API_PREFIX}"

    @property
    def stream_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{STREAM_PATH}"

    # -- scripting ------------------------------------------------------------------
    def route(self, method: str, path: str, handler: Handler) -> None:
        """Serve ``handler`` at ``/v1{path}``; it returns the payload to render.

        Call before ``start()`` (aiohttp freezes the router once serving)."""

        async def wrapped(request: web.Request) -> web.StreamResponse:
            payload = await handler(request)
            if isinstance(payload, web.StreamResponse):
                return payload
            return self.render(request, payload)

        self.app.router.add_route(method, f"{API_PREFIX}{path}", wrapped)

    def fail(
        self,
        path: str,
        status: int | None = 500,
        *,
        times: int = 1,
        delay: float = 0.0,
        headers: dict[str, str] | None = None,
        body: str = "Internal Server Error",
        method: str | None = None,
    ) -> None:
        self.faults.append(Fault(path, status, times, delay, headers or {}, body, method))

    def limit(self, allowed: int, window: float, prefix: str = "/markets") -> None:
        """Allow ``allowed`` requests per ``window`` seconds under ``prefix``, then 429."""
        self.quota = Quota(allowed, window, prefix)

    def list_options(
        self,
        underlying: str,
        spot: float,
        expirations: dict[date, float],
        strikes: Iterable[float],
        *,
        vol: float = 0.25,
        updated_at: str = "2026-12-07 17:59:59",
    ) -> None:
        """List ``underlying``'s options: ``expirations`` maps each date to its years to
        expiry; every strike gets a call and a put priced at ``spot``."""
        strikes = list(strikes)
        self.option_expirations[underlying] = sorted(d.isoformat() for d in expirations)
        for expiration, years in expirations.items():
            self.option_chains[(underlying, expiration.isoformat())] = [
                tradier_option(
                    underlying, expiration, right, k, spot=spot, years=years, vol=vol,
                    updated_at=updated_at,
                )
                for right in ("call", "put")
                for k in strikes
            ]  # fmt: skip

    def calls(self, path: str, method: str | None = None) -> list[Recorded]:
        return [
            r for r in self.requests if r.path == path and (method is None or r.method == method)
        ]

    # -- rendering ------------------------------------------------------------------
    @staticmethod
    def render(request: web.Request, payload: Any, status: int = 200) -> web.Response:
        if "application/json" in request.headers.get("Accept", ""):
            return web.json_response(payload, status=status)
        return web.Response(text=to_xml(payload), status=status, content_type="application/xml")

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == STREAM_PATH:  # the WebSocket authenticates by session id
            response: web.StreamResponse = await handler(request)
            return response
        record = Recorded(
            request.method,
            request.path.removeprefix(API_PREFIX),
            dict(request.query),
            dict(request.headers),
        )
        self.requests.append(record)
        response = await self._answer(request, record, handler)
        record.status = response.status
        return response

    async def _answer(
        self, request: web.Request, record: Recorded, handler: Handler
    ) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.Response(status=401, text="Invalid Access Token")
        quota_headers: dict[str, str] = {}
        if self.quota is not None and record.path.startswith(self.quota.prefix):
            quota = self.quota
            now = time.time()
            if now >= quota.resets_at:
                quota.used, quota.resets_at = 0, now + quota.window
            exhausted = quota.used >= quota.allowed
            quota.used += 0 if exhausted else 1
            quota_headers = {
                "X-Ratelimit-Allowed": str(quota.allowed),
                "X-Ratelimit-Used": str(quota.used),
                "X-Ratelimit-Available": str(quota.allowed - quota.used),
                "X-Ratelimit-Expiry": str(int(quota.resets_at * 1000)),
            }
            if exhausted:
                return web.Response(status=429, text="Quota Violation", headers=quota_headers)
        fault = next(
            (
                f
                for f in self.faults
                if f.path == record.path
                and f.times > 0
                and (f.method is None or f.method == record.method)
            ),
            None,
        )
        if fault is not None:
            fault.times -= 1
            if fault.delay:
                await request.read()  # the request arrived whole; only the answer is slow
                await asyncio.sleep(fault.delay)
            if fault.status is not None:
                headers = {**quota_headers, **fault.headers}
                return web.Response(status=fault.status, text=fault.body, headers=headers)
        try:
            response: web.StreamResponse = await handler(request)
        except web.HTTPException as exc:
            return web.Response(status=exc.status, text=exc.text or exc.reason)
        response.headers.update(quota_headers)
        return response

    # -- market data endpoints ------------------------------------------------------
    def _market_routes(self) -> None:
        self.route("GET", "/markets/quotes", self._quotes)
        self.route("GET", "/markets/history", self._history)
        self.route("GET", "/markets/timesales", self._timesales)
        self.route("GET", "/markets/clock", self._clock)
        self.route("GET", "/markets/calendar", self._calendar)
        self.route("GET", "/markets/lookup", self._lookup)
        self.route("POST", "/markets/events/session", self._session)
        self.route("GET", "/markets/options/expirations", self._expirations)
        self.route("GET", "/markets/options/chains", self._chains)

    async def _quotes(self, request: web.Request) -> Any:
        raw = request.query.get("symbols", "")
        symbols = [s.strip().upper() for s in raw.split(",") if s.strip()]
        if not symbols:
            raise web.HTTPBadRequest(text="Missing symbols")
        found = [self.quotes[s] for s in symbols if s in self.quotes]
        unmatched = [s for s in symbols if s not in self.quotes]
        body: dict[str, Any] = {}
        if found:
            body["quote"] = one_or_many(found)
        if unmatched:
            body["unmatched_symbols"] = {"symbol": one_or_many(unmatched)}
        return {"quotes": body}

    async def _history(self, request: web.Request) -> Any:
        q = request.query
        interval = q.get("interval", "daily")
        if interval not in ("daily", "weekly", "monthly"):
            raise web.HTTPBadRequest(text=f"Invalid interval {interval}")
        rows = self.history.get((q.get("symbol", "").upper(), interval), [])
        start, end = q.get("start", "0000-00-00"), q.get("end", "9999-99-99")
        picked = [r for r in rows if start <= r["date"] <= end]
        return {"history": {"day": one_or_many(picked)} if picked else "null"}

    async def _timesales(self, request: web.Request) -> Any:
        q = request.query
        interval = q.get("interval", "tick")
        if interval not in ("tick", "1min", "5min", "15min"):
            raise web.HTTPBadRequest(text=f"Invalid interval {interval}")
        if q.get("session_filter", "all") not in ("all", "open"):
            raise web.HTTPBadRequest(text="Invalid session_filter")
        rows = self.timesales.get((q.get("symbol", "").upper(), interval), [])
        start, end = _new_york(q["start"]), _new_york(q["end"])
        picked = [r for r in rows if start <= r["timestamp"] <= end]
        return {"series": {"data": one_or_many(picked)} if picked else "null"}

    async def _clock(self, request: web.Request) -> Any:
        return {"clock": self.clock}

    async def _calendar(self, request: web.Request) -> Any:
        month, year = int(request.query["month"]), int(request.query["year"])
        days = self.calendars.get((year, month), [])
        return {"calendar": {"month": month, "year": year, "days": {"day": one_or_many(days)}}}

    async def _lookup(self, request: web.Request) -> Any:
        q = request.query.get("q", "").strip()
        hits = [
            s
            for s in self.securities
            if q and (s["symbol"].startswith(q.upper()) or q.lower() in s["description"].lower())
        ]
        return {"securities": {"security": one_or_many(hits)} if hits else "null"}

    async def _expirations(self, request: web.Request) -> Any:
        symbol = request.query.get("symbol", "").strip().upper()
        if not symbol:
            raise web.HTTPBadRequest(text="Missing symbol")
        dates = self.option_expirations.get(symbol, [])
        return {"expirations": {"date": one_or_many(dates)} if dates else self.options_empty}

    async def _chains(self, request: web.Request) -> Any:
        symbol = request.query.get("symbol", "").strip().upper()
        expiration = request.query.get("expiration", "")
        if not symbol or not expiration:
            raise web.HTTPBadRequest(text="Missing symbol or expiration")
        rows = self.option_chains.get((symbol, expiration), [])
        return {"options": {"option": one_or_many(rows)} if rows else self.options_empty}

    async def _session(self, request: web.Request) -> Any:
        session_id = str(uuid.uuid4())
        self.sessions[session_id] = False
        return {
            "stream": {
                "url": "https://stream.tradier.com/v1/markets/events",
                "sessionid": session_id,
            }
        }

    # -- streaming -----------------------------------------------------------------
    async def _stream(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        try:
            first = await ws.receive(timeout=5)
        except TimeoutError:
            await ws.close()
            return ws
        payload = json.loads(first.data) if first.type is WSMsgType.TEXT else {}
        session_id = str(payload.get("sessionid", ""))
        refusal = None
        if session_id not in self.sessions or self.sessions[session_id]:
            refusal = "session not found or already used"
        elif self.refuse_subscriptions > 0:
            self.refuse_subscriptions -= 1
            refusal = "session expired"
        if refusal is not None:
            if session_id in self.sessions:
                self.sessions[session_id] = True
            self.refusals.append(refusal)
            await ws.send_str(json.dumps({"error": refusal}))
            await ws.close(code=WSCloseCode.POLICY_VIOLATION)
            return ws
        self.sessions[session_id] = True
        sub = Subscription(
            session_id,
            [str(s).upper() for s in payload.get("symbols", [])],
            payload.get("filter"),
            bool(payload.get("linebreak", False)),
        )
        self.subscriptions.append(sub)
        self._sockets[ws] = sub
        async with self._changed:
            self._changed.notify_all()
        try:
            async for _ in ws:  # Tradier ignores client chatter after the subscription
                pass
        finally:
            self._sockets.pop(ws, None)
        return ws

    async def wait_for_subscriptions(self, count: int, timeout: float = 5.0) -> Subscription:
        """The ``count``-th subscription (1-based), once it is live."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(
                lambda: (
                    len(self.subscriptions) >= count
                    and self.subscriptions[count - 1] in self._sockets.values()
                )
            )
        return self.subscriptions[count - 1]

    async def push(self, *events: dict[str, Any]) -> int:
        """Send events to each live subscriber of their symbol, in one frame; returns
        the number of sockets written to."""
        sent = 0
        for ws, sub in list(self._sockets.items()):
            mine = [e for e in events if str(e.get("symbol", "")).upper() in sub.symbols]
            mine = [e for e in mine if not sub.filter or e.get("type") in sub.filter]
            if mine and not ws.closed:
                sep = "\n" if sub.linebreak else ""
                await ws.send_str(sep.join(json.dumps(e) for e in mine) + sep)
                sent += 1
        return sent

    async def drop_streams(self) -> None:
        """Close every stream from the server side, as a Tradier restart would."""
        for ws in list(self._sockets):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server restart")
        self._sockets.clear()


def _new_york(value: str) -> float:
    """Epoch of a timesales ``YYYY-MM-DD HH:MM`` (or date) parameter, New York time."""
    for fmt in ("%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            local = datetime.strptime(value, fmt)
        except ValueError:
            continue
        return local.replace(tzinfo=NEW_YORK).timestamp()
    raise web.HTTPBadRequest(text=f"Invalid date {value}")


def utc_midnight(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())
