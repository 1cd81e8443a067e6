"""Tradier market data behind the ``Feed`` protocol.

REST for snapshots, bars and symbols (through the shared ``TradierClient``), the
WebSocket event stream for live quotes. Tradier's JSON quirks are handled in
``app.tradier.normalize``; this module maps Tradier's endpoints onto the UDF
semantics the datahub serves (``[start, end)``, countback, ``nextTime``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Sequence
from contextlib import aclosing
from datetime import date
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson

from app.feeds.base import FeedError, NoOptionsError
from app.models.market import (
    Bar,
    History,
    Quote,
    Resolution,
    SymbolInfo,
    is_valid_symbol,
    normalize_symbol,
)
from app.observability.metrics import FEED_ERRORS, FEED_LATENCY
from app.options.chain import OptionChain
from app.retry import RetryPolicy
from app.tradier import normalize as tn
from app.tradier.client import (
    PRODUCTION_URL,
    STREAM_URL,
    Params,
    TradierClient,
    TradierError,
)

if TYPE_CHECKING:
    from app.config import Settings

log = logging.getLogger(__name__)

FEED = "tradier"
DAY = 86_400
QUOTES_PER_CALL = 100  # keeps the GET URL well under proxy limits
STREAM_FILTER = ["quote", "trade"]

PERIOD_INTERVALS = {Resolution.D1: "daily", Resolution.W1: "weekly", Resolution.MN1: "monthly"}
# Timesales serves 1/5/15-minute bars; longer intraday bars are built from 15-minute ones.
TIMESALES_INTERVALS = {
    Resolution.M1: "1min",
    Resolution.M5: "5min",
    Resolution.M15: "15min",
    Resolution.M30: "15min",
    Resolution.H1: "15min",
    Resolution.H4: "15min",
}
# How far back countback may widen the window: Tradier keeps ~40 days of 5/15-minute
# bars (20 of 1-minute); daily history goes back decades.
INTRADAY_LOOKBACK_MAX = 60 * DAY
PERIOD_LOOKBACK_MAX = 60 * 365 * DAY


class TradierFeed:
    """Market data from Tradier (production or sandbox, by ``base_url``)."""

    name = "tradier"

    def __init__(
        self,
        token: str,
        base_url: str = PRODUCTION_URL,
        stream_url: str = STREAM_URL,
        timeout: float = 5.0,
        symbols: Sequence[str] = (),
        *,
        retry: RetryPolicy | None = None,
        stream_heartbeat: float = 30.0,
        cache_size: int = 4096,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = TradierClient(token, base_url, timeout=timeout, retry=retry)
        self.stream_url = stream_url
        self.symbols = [normalize_symbol(s) for s in symbols]
        self.stream_heartbeat = stream_heartbeat
        self._infos: OrderedDict[str, SymbolInfo] = OrderedDict()
        self._cache_size = cache_size
        self._clock = clock

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> TradierFeed:
        if settings.tradier_token is None:
            raise FeedError("TRADEROPS_TRADIER_TOKEN is required for the Tradier feed")
        return cls(
            settings.tradier_token.get_secret_value(),
            settings.tradier_base_url,
            settings.tradier_stream_url,
            settings.tradier_timeout_seconds,
            settings.symbols,
            **kwargs,
        )

    def __repr__(self) -> str:
        return f"TradierFeed(base_url={self.client.base_url!r})"

    # -- lifecycle ------------------------------------------------------------------
    async def start(self) -> None:
        await self.client.start()

    async def close(self) -> None:
        await self.client.close()

    async def _get(
        self, op: str, path: str, params: Params | None = None, *, retry: bool = True
    ) -> Any:
        """One REST call, measured, with Tradier's failures turned into ``FeedError``."""
        started = time.perf_counter()
        try:
            return await self.client.get(path, params, retry=retry)
        except TradierError as exc:
            FEED_ERRORS.labels(FEED, op).inc()
            raise FeedError(str(exc)) from exc
        finally:
            FEED_LATENCY.labels(FEED, op).observe(time.perf_counter() - started)

    # -- health, clock, calendar ----------------------------------------------------
    async def ping(self) -> None:
        """One attempt at ``/markets/clock``: readiness must answer fast, not retry."""
        clock = tn.market_clock(await self._get("ping", "/markets/clock", retry=False))
        if not clock.state:
            raise FeedError("Tradier answered /markets/clock without a market state")

    async def clock(self) -> tn.MarketClock:
        return tn.market_clock(await self._get("clock", "/markets/clock"))

    async def calendar(self, month: int, year: int) -> list[tn.CalendarDay]:
        body = await self._get("calendar", "/markets/calendar", {"month": month, "year": year})
        return tn.calendar_days(body)

    # -- symbols ----------------------------------------------------------------------
    def _remember(self, info: SymbolInfo) -> None:
        self._infos[info.symbol] = info
        self._infos.move_to_end(info.symbol)
        while len(self._infos) > self._cache_size:
            self._infos.popitem(last=False)

    async def resolve(self, symbol: str) -> SymbolInfo | None:
        """Exact symbol via lookup, falling back to the quote (lookup ranks by relevance,
        so a one-letter ticker like ``F`` may not be among its hits)."""
        wanted = normalize_symbol(symbol)
        if not is_valid_symbol(wanted):
            return None
        if wanted in self._infos:
            self._infos.move_to_end(wanted)
            return self._infos[wanted]
        for info in tn.securities(await self._get("lookup", "/markets/lookup", {"q": wanted})):
            self._remember(info)
        if wanted not in self._infos:
            body = await self._get("quotes", "/markets/quotes", {"symbols": wanted})
            for raw in tn.collection(body, "quotes", "quote"):
                if isinstance(raw, dict) and (quoted := tn.symbol_info(raw)) is not None:
                    self._remember(quoted)
        return self._infos.get(wanted)

    async def search(self, query: str, limit: int = 30) -> list[SymbolInfo]:
        q = query.strip()
        if not q:  # the chart's empty search lists the configured universe
            found = await asyncio.gather(*(self.resolve(s) for s in self.symbols[:limit]))
            return [info for info in found if info is not None]
        infos = tn.securities(await self._get("lookup", "/markets/lookup", {"q": q}))
        for info in infos:
            self._remember(info)
        upper = q.upper()
        infos.sort(key=lambda i: (i.symbol != upper, not i.symbol.startswith(upper), i.symbol))
        return infos[:limit]

    # -- quotes -----------------------------------------------------------------------
    async def quotes(self, symbols: Sequence[str]) -> dict[str, Quote]:
        wanted = list(
            dict.fromkeys(s for s in map(normalize_symbol, symbols) if is_valid_symbol(s))
        )
        found: dict[str, Quote] = {}
        for i in range(0, len(wanted), QUOTES_PER_CALL):
            chunk = wanted[i : i + QUOTES_PER_CALL]
            body = await self._get(
                "quotes", "/markets/quotes", {"symbols": ",".join(chunk), "greeks": "false"}
            )
            quotes, unmatched = tn.quotes_from_rest(body, self._clock())
            if unmatched:
                log.debug("Tradier does not know %s", ",".join(unmatched))
            found.update((q.symbol, q) for q in quotes if q.symbol in chunk)
        return found

    # -- options ------------------------------------------------------------------------
    @staticmethod
    def _underlying(symbol: str) -> str:
        wanted = normalize_symbol(symbol)
        if not is_valid_symbol(wanted):
            raise NoOptionsError(f"Tradier lists no options for {symbol!r}: not a symbol")
        return wanted

    async def expirations(self, symbol: str) -> list[date]:
        """Every listed expiration, all roots included (SPXW beside SPX, AAPL1 after a
        corporate action); NoOptionsError when Tradier answers ``null``."""
        wanted = self._underlying(symbol)
        params = {"symbol": wanted, "includeAllRoots": "true"}
        body = await self._get("expirations", "/markets/options/expirations", params)
        found = tn.expiration_dates(body)
        if not found:
            raise NoOptionsError(f"Tradier lists no options for {wanted}")
        return found

    async def chain(self, symbol: str, expiration: date) -> OptionChain:
        """One expiration with greeks (ORATS, refreshed about hourly: ``greeks_time``) and
        the underlying's last price; NoOptionsError when nothing is listed that day."""
        wanted = self._underlying(symbol)
        params = {"symbol": wanted, "expiration": expiration.isoformat(), "greeks": "true"}
        body, spot = await asyncio.gather(
            self._get("chains", "/markets/options/chains", params), self._last_price(wanted)
        )
        chain = tn.option_chain(body, wanted, expiration, self._clock(), spot)
        if not chain.quotes:
            raise NoOptionsError(
                f"Tradier lists no {wanted} options expiring {expiration.isoformat()}"
            )
        return chain

    async def _last_price(self, symbol: str) -> float | None:
        """The underlying's last price for a chain; None rather than failing the chain."""
        try:
            quote = (await self.quotes([symbol])).get(symbol)
        except FeedError as exc:
            log.warning("Tradier quote of %s for its option chain failed: %s", symbol, exc)
            return None
        return None if quote is None else quote.last

    # -- bars ---------------------------------------------------------------------------

    async def history(
        self,
        symbol: str,
        resolution: Resolution,
        start: int,
        end: int,
        countback: int | None = None,
    ) -> History:
        symbol = normalize_symbol(symbol)
        if countback:
            span = _initial_span(resolution, countback)
            cap = INTRADAY_LOOKBACK_MAX if resolution.intraday else PERIOD_LOOKBACK_MAX
            while True:
                start = end - span
                bars = await self._bars(symbol, resolution, start, end)
                if len(bars) >= countback or span >= cap:
                    break
                span = min(cap, span * 4)  # weekends, holidays, halts: look further back
            bars = bars[-countback:]
        else:
            if end <= start:
                return History(bars=[])
            bars = await self._bars(symbol, resolution, start, end)
        if bars:
            return History(bars=bars)
        return History(bars=[], next_time=await self._next_time(symbol, resolution, start))

    async def _bars(self, symbol: str, res: Resolution, start: int, end: int) -> list[Bar]:
        """Bars with ``start <= time < end``, ascending, one per time."""
        interval = PERIOD_INTERVALS.get(res)
        if interval is not None:
            params = {
                "symbol": symbol,
                "interval": interval,
                "start": tn.utc_date(start),
                "end": tn.utc_date(end - 1),
            }
            raw = tn.history_bars(await self._get("history", "/markets/history", params), res)
            return _in_range(raw, start, end)
        interval = TIMESALES_INTERVALS[res]
        # Whole output bars, so an aggregated bar is never cut at the window's edge.
        lo, hi = res.bar_start(start), res.next_bar_start(res.bar_start(end - 1))
        params = {
            "symbol": symbol,
            "interval": interval,
            "start": tn.new_york_minute(lo),
            "end": tn.new_york_minute(hi),
            "session_filter": "all",
        }
        raw = tn.timesales_bars(await self._get("timesales", "/markets/timesales", params))
        bars = _in_range(raw, lo, hi)
        if int(interval.removesuffix("min")) * 60 != res.seconds:
            bars = aggregate(bars, res)
        return _in_range(bars, start, end)

    async def _next_time(self, symbol: str, res: Resolution, before: int) -> int | None:
        """UDF ``nextTime``: the latest bar before an empty range, so the chart can jump."""
        window = 10 * DAY if res.intraday else (400 * DAY if res is not Resolution.D1 else 60 * DAY)
        try:
            bars = await self._bars(symbol, res, before - window, before)
        except FeedError as exc:
            log.warning("Tradier nextTime lookup for %s failed: %s", symbol, exc)
            return None
        return bars[-1].time if bars else None

    # -- streaming ------------------------------------------------------------------------
    async def stream(self, symbols: Sequence[str]) -> AsyncIterator[list[Quote]]:
        """Live quotes, forever: on any drop, back off (capped, jittered), then a NEW
        session and a fresh subscription. Each reconnect is logged and counted."""
        wanted = sorted({s for s in map(normalize_symbol, symbols) if is_valid_symbol(s)})
        if not wanted:
            return
        book = QuoteBook(self._clock)
        backoff = self.client.retry.waits()
        while True:
            delivered = False
            try:
                snapshot = await self._snapshot(wanted)
                if snapshot:
                    book.seed(snapshot)
                    yield snapshot
                async with aclosing(self._stream_once(wanted, book)) as batches:
                    async for batch in batches:
                        delivered = True
                        yield batch
                reason = "closed by Tradier"
            except (FeedError, TradierError, aiohttp.ClientError, TimeoutError) as exc:
                reason = str(exc) or type(exc).__name__
            if delivered:  # the session worked: this drop starts a new outage
                backoff.reset()
            delay = next(backoff)
            FEED_ERRORS.labels(FEED, "stream").inc()
            log.warning(
                "Tradier stream dropped (%s); reconnecting in %.2fs with a new session (attempt %d)",
                reason,
                delay,
                backoff.failures,
            )
            await asyncio.sleep(delay)

    async def _snapshot(self, symbols: Sequence[str]) -> list[Quote]:
        """REST quotes to seed the book (session open/high/low/prev close) and fill gaps."""
        try:
            return list((await self.quotes(symbols)).values())
        except FeedError as exc:
            log.warning("Tradier quote snapshot before streaming failed: %s", exc)
            return []

    async def _stream_once(
        self, symbols: list[str], book: QuoteBook
    ) -> AsyncGenerator[list[Quote], None]:
        """One session: create it, connect, subscribe, relay events until the socket ends."""
        started = time.perf_counter()
        try:
            body = await self.client.post("/markets/events/session", idempotent=True)
        except TradierError as exc:
            FEED_ERRORS.labels(FEED, "stream_session").inc()
            raise FeedError(f"cannot create a Tradier streaming session: {exc}") from exc
        finally:
            FEED_LATENCY.labels(FEED, "stream_session").observe(time.perf_counter() - started)
        session_id = tn.first(body, "stream").get("sessionid")
        if not session_id:
            raise FeedError("Tradier answered the streaming session request without a sessionid")
        ws = await self.client.ws_connect(self.stream_url, heartbeat=self.stream_heartbeat)
        try:
            subscription = {
                "symbols": symbols,
                "sessionid": session_id,
                "filter": STREAM_FILTER,
                "linebreak": True,
            }
            await ws.send_str(orjson.dumps(subscription).decode())
            log.info("Tradier stream subscribed to %d symbols", len(symbols))
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    events = tn.stream_events(msg.data)
                    refused = next((e["error"] for e in events if e.get("error")), None)
                    if refused:
                        raise FeedError(f"Tradier refused the stream: {refused}")
                    batch = book.apply(events)
                    if batch:
                        yield batch
                elif msg.type is aiohttp.WSMsgType.ERROR:
                    raise FeedError(f"Tradier stream error: {ws.exception()}")
        finally:
            await ws.close()


class QuoteBook:
    """Full quotes rebuilt from partial events: bid/ask from ``quote``, last and
    cumulative volume from ``trade``, the rest from the last REST snapshot."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._state: dict[str, dict[str, Any]] = {}
        self._clock = clock

    def seed(self, quotes: Iterable[Quote]) -> None:
        for quote in quotes:
            self._state[quote.symbol] = quote.model_dump()

    def apply(self, events: Iterable[dict[str, Any]]) -> list[Quote]:
        changed: dict[str, None] = {}  # ordered set
        for event in events:
            symbol = str(event["symbol"]).upper()
            state = self._state.setdefault(symbol, {"symbol": symbol})
            kind = event.get("type")
            if kind == "quote":
                stamp = _apply_top(state, event)
            elif kind == "trade":
                stamp = _apply_trade(state, event)
            else:
                continue
            if stamp is not None:
                state["time"] = stamp or self._clock()
                changed[symbol] = None
        out = []
        for symbol in changed:
            state = self._state[symbol]
            if state.get("last") is None:
                continue  # no trade price yet: nothing honest to publish
            state.setdefault("bid", state["last"])
            state.setdefault("ask", state["last"])
            out.append(Quote.model_validate(state))
        return out


def _apply_top(state: dict[str, Any], event: dict[str, Any]) -> float | None:
    """Bid/ask from a ``quote`` event; its time (0.0 when unstamped), None if it had no prices."""
    bid, ask = tn.num(event.get("bid")), tn.num(event.get("ask"))
    if bid is None and ask is None:
        return None
    if bid is not None:
        state["bid"] = bid
        state["bid_size"] = tn.integer(event.get("bidsz"))
    if ask is not None:
        state["ask"] = ask
        state["ask_size"] = tn.integer(event.get("asksz"))
    stamps = [tn.epoch_ms(event.get(k)) or 0.0 for k in ("biddate", "askdate")]
    return max(stamps)


def _apply_trade(state: dict[str, Any], event: dict[str, Any]) -> float | None:
    """Last price, cumulative volume, high/low and change from a ``trade`` event."""
    price = tn.num(event.get("price"))
    if price is None:
        price = tn.num(event.get("last"))
    if price is None:
        return None
    state["last"] = price
    cumulative = tn.num(event.get("cvol"))
    if cumulative is not None:
        state["volume"] = int(cumulative)
    state["high"] = max(state.get("high") or price, price)
    state["low"] = min(state.get("low") or price, price)
    prev = state.get("prev_close")
    if prev:
        state["change"] = round(price - prev, 4)
        state["change_pct"] = round((price - prev) / prev * 100, 4)
    return tn.epoch_ms(event.get("date")) or 0.0


def _initial_span(res: Resolution, countback: int) -> int:
    """A first window likely to hold ``countback`` bars (markets trade ~1/3 of the clock)."""
    if res.intraday:
        return countback * res.seconds * 3 + 4 * DAY
    return int(countback * res.seconds * 1.6) + 7 * DAY


def _in_range(bars: Iterable[Bar], start: int, end: int) -> list[Bar]:
    """Ascending, one bar per time (the last one Tradier sent wins), ``start <= time < end``."""
    by_time = {bar.time: bar for bar in bars if start <= bar.time < end}
    return [by_time[t] for t in sorted(by_time)]


def aggregate(bars: Iterable[Bar], res: Resolution) -> list[Bar]:
    """Roll ascending bars up into ``res`` bars, on the ``Resolution.bar_start`` grid."""
    out: list[Bar] = []
    for bar in bars:
        start = res.bar_start(bar.time)
        if out and out[-1].time == start:
            cur = out[-1]
            cur.high = max(cur.high, bar.high)
            cur.low = min(cur.low, bar.low)
            cur.close = bar.close
            cur.volume += bar.volume
        else:
            out.append(bar.model_copy(update={"time": start}))
    return out
