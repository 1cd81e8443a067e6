"""Simulated market data: deterministic for a seed, consistent between history and quotes.

Every price is a function of (seed, symbol, time), so two processes agree and a
restart changes nothing:

* a daily random walk anchored at each instrument's reference price;
* each day (24 h, UTC, so the stack is usable at any hour) is a Brownian bridge of
  1-minute log prices from the previous close to that day's close, with U-shaped
  volatility and volume around the US regular session;
* a live quote inside a minute moves between that minute's open and close and
  never leaves its high/low, so the forming bar and the quotes always agree.

Options on the plain tickers (``app/feeds/sim_chains.py``): chains, and OCC symbols in
``quotes``/``stream``/``resolve`` priced from the same model at the same moment.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import date

import numpy as np
import orjson

from app.feeds.bar_worker import BarWorker
from app.feeds.base import UnknownSymbolError
from app.feeds.sim_chains import SimOptions
from app.feeds.universe import Instrument, instrument_for
from app.models.market import Bar, History, Quote, Resolution, SymbolInfo
from app.models.occ import is_occ
from app.options.chain import OptionChain

MINUTES = 1440
DAY = 86_400
EPOCH_DAY = 10_957  # 2000-01-01: no data before it
REF_DAY = 20_089  # 2025-01-01: instruments sit at their reference price here
HORIZON_DAYS = 40 * 365  # anchors computed up to 2040

log = logging.getLogger(__name__)


def _profile() -> tuple[np.ndarray, np.ndarray]:
    """Per-minute volatility and volume weights (UTC): U-shaped over 14:30-21:00."""
    minute = np.arange(MINUTES)
    vol = np.full(MINUTES, 0.25)
    volume = np.full(MINUTES, 0.02)
    session = (minute >= 870) & (minute < 1260)
    x = (minute[session] - 870) / 390.0  # 0..1 through the regular session
    u_shape = 1.0 + 3.0 * ((2 * x - 1) ** 2)
    vol[session] = u_shape
    volume[session] = u_shape
    vol_w = vol / math.sqrt(float(np.sum(vol**2)))  # sum of squares = 1
    vol_norm = volume / float(np.sum(volume))  # sums to 1
    return vol_w, vol_norm


VOL_WEIGHTS, VOLUME_WEIGHTS = _profile()


def _symbol_key(symbol: str) -> int:
    return int.from_bytes(hashlib.blake2b(symbol.encode(), digest_size=8).digest(), "big")


@dataclass(slots=True)
class DayPath:
    """One symbol's 1-minute bars for one UTC day, plus running totals for quotes."""

    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    cum_volume: np.ndarray  # volume before minute i
    run_high: np.ndarray  # high of minutes [0, i)
    run_low: np.ndarray
    prev_close: float
    phase: float  # per-day wiggle phase for sub-minute quotes


class SimulatedFeed:
    name = "simulated"

    def __init__(
        self,
        symbols: Sequence[str],
        *,
        seed: int = 42,
        quote_rate: float = 2.0,
        clock: Callable[[], float] | None = None,
        cache_days: int = 256,
    ) -> None:
        self.seed = seed
        self.quote_rate = quote_rate
        self.instruments: dict[str, Instrument] = {s: instrument_for(s) for s in symbols}
        self._anchors: dict[str, np.ndarray] = {}
        self._days: OrderedDict[tuple[str, int], DayPath] = OrderedDict()
        self._daily: dict[str, dict[int, tuple[float, float, float, float, float]]] = {}
        self._cache_days = cache_days
        self._now = clock or time.time
        self._days_lock = threading.Lock()  # history runs in a worker thread, quotes on the loop
        self.worker = BarWorker(symbols, seed)
        self.options = SimOptions(self, seed)

    # -- protocol ---------------------------------------------------------------
    async def start(self) -> None:
        return None

    async def close(self) -> None:
        await self.worker.close()

    async def ping(self) -> None:
        return None

    async def resolve(self, symbol: str) -> SymbolInfo | None:
        inst = self.instruments.get(symbol)
        if inst is not None:
            return _info(inst)
        return self.options.info(symbol, self._now()) if is_occ(symbol) else None

    async def search(self, query: str, limit: int = 30) -> list[SymbolInfo]:
        q = query.strip().upper()
        hits = [
            i
            for i in self.instruments.values()
            if not q or q in i.symbol or q in i.description.upper()
        ]
        hits.sort(key=lambda i: (not i.symbol.startswith(q), i.symbol))
        return [_info(i) for i in hits[:limit]]

    async def quotes(self, symbols: Sequence[str]) -> dict[str, Quote]:
        """Tickers of the universe and listed OCC option contracts; others are absent."""
        now = self._now()
        found: dict[str, Quote] = {}
        for s in symbols:
            quote = self.any_quote_at(s, now)
            if quote is not None:
                found[s] = quote
        return found

    async def expirations(self, symbol: str) -> list[date]:
        return self.options.expirations(symbol, self._now())

    async def chain(self, symbol: str, expiration: date) -> OptionChain:
        return self.options.chain(symbol, expiration, self._now())

    def any_quote_at(self, symbol: str, ts: float) -> Quote | None:
        """The quote of a ticker or of a listed OCC contract at ``ts``; None if unknown."""
        if symbol in self.instruments:
            return self.quote_at(symbol, ts)
        return self.options.quote(symbol, ts) if is_occ(symbol) else None

    async def history(
        self,
        symbol: str,
        resolution: Resolution,
        start: int,
        end: int,
        countback: int | None = None,
    ) -> History:
        """Bars are CPU work (up to ~2 s for decades of days): done in a worker thread so
        the event loop keeps answering; the datahub bounds how many run at once."""
        now = self._now()
        if symbol not in self.instruments and is_occ(symbol):
            return History(bars=[])  # options are quoted, not charted
        return await asyncio.to_thread(
            self.history_at, symbol, resolution, start, end, countback, now=now
        )

    async def history_body(
        self,
        symbol: str,
        resolution: Resolution,
        start: int,
        end: int,
        countback: int | None = None,
    ) -> bytes:
        """The UDF JSON body, computed in the bar worker process (see app/feeds/bar_worker.py)."""
        if symbol not in self.instruments and is_occ(symbol):
            return orjson.dumps(History(bars=[]).udf_columns())  # options: no bars
        self._inst(symbol)
        now = self._now()
        try:
            return await self.worker.body(symbol, resolution, start, end, countback, now)
        except (OSError, BrokenProcessPool) as exc:  # no worker process here: a thread, then
            log.warning("bar worker process unavailable (%s); computing bars in a thread", exc)
            history = await asyncio.to_thread(
                self.history_at, symbol, resolution, start, end, countback, now=now
            )
            return orjson.dumps(history.udf_columns())

    async def stream(self, symbols: Sequence[str]) -> AsyncIterator[list[Quote]]:
        """Quotes of the universe's tickers and of OCC contracts (those listed at each tick;
        an expired contract drops out of the batches)."""
        wanted = [s for s in symbols if s in self.instruments or is_occ(s)]
        interval = max(0.001, 1.0 / self.quote_rate)
        next_tick = time.monotonic()
        while True:
            now = self._now()
            yield [q for s in wanted if (q := self.any_quote_at(s, now)) is not None]
            next_tick += interval
            delay = next_tick - time.monotonic()
            if delay < 0:  # fell behind: skip missed ticks rather than bursting
                next_tick = time.monotonic()
                delay = 0
            await asyncio.sleep(delay)

    # -- deterministic model ------------------------------------------------------
    def close_range(self, symbol: str, first_day: int, last_day: int) -> tuple[float, float]:
        """(lowest, highest) daily close of ``symbol`` over day numbers [first, last]."""
        closes = self._anchor_closes(symbol)
        lo = min(max(first_day - EPOCH_DAY, 0), len(closes) - 1)
        hi = min(max(last_day - EPOCH_DAY, lo), len(closes) - 1)
        window = closes[lo : hi + 1]
        return float(window.min()), float(window.max())

    def _inst(self, symbol: str) -> Instrument:
        inst = self.instruments.get(symbol)
        if inst is None:
            raise UnknownSymbolError(symbol)
        return inst

    def _anchor_closes(self, symbol: str) -> np.ndarray:
        """Daily closes from EPOCH_DAY for HORIZON_DAYS days."""
        closes = self._anchors.get(symbol)
        if closes is None:
            inst = self._inst(symbol)
            rng = np.random.default_rng([self.seed, _symbol_key(symbol), 0])
            sigma = inst.annual_vol / math.sqrt(365.0)
            returns = rng.standard_normal(HORIZON_DAYS) * sigma
            log_path = np.cumsum(returns)
            ref = REF_DAY - EPOCH_DAY
            closes = inst.price * np.exp(log_path - log_path[ref])
            self._anchors[symbol] = closes
        return closes

    def _close_of_day(self, symbol: str, day: int) -> float:
        closes = self._anchor_closes(symbol)
        idx = min(max(day - EPOCH_DAY, 0), len(closes) - 1)
        return float(closes[idx])

    def day_path(self, symbol: str, day: int) -> DayPath:
        key = (symbol, day)
        with self._days_lock:
            path = self._days.get(key)
            if path is not None:
                self._days.move_to_end(key)
                return path
        inst = self._inst(symbol)
        prev_close = self._close_of_day(symbol, day - 1)
        target = self._close_of_day(symbol, day)
        sigma_day = inst.annual_vol / math.sqrt(365.0)
        rng = np.random.default_rng([self.seed, _symbol_key(symbol), 1, day])
        z = rng.standard_normal(MINUTES) * VOL_WEIGHTS * sigma_day
        walk = np.cumsum(z)
        frac = np.cumsum(VOL_WEIGHTS**2)  # 0..1, time measured in variance
        log_close = (
            math.log(prev_close) + walk - frac * walk[-1] + frac * math.log(target / prev_close)
        )
        close = np.exp(log_close)
        open_ = np.empty(MINUTES)
        open_[0] = prev_close
        open_[1:] = close[:-1]
        spread = np.abs(rng.standard_normal((2, MINUTES))) * VOL_WEIGHTS * sigma_day * 0.6
        high = np.maximum(open_, close) * np.exp(spread[0])
        low = np.minimum(open_, close) * np.exp(-spread[1])
        noise = rng.lognormal(0.0, 0.35, MINUTES)
        volume = np.floor(inst.daily_volume * VOLUME_WEIGHTS * noise)
        cum_volume = np.concatenate(([0.0], np.cumsum(volume)[:-1]))
        run_high = np.concatenate(([open_[0]], np.maximum.accumulate(high)[:-1]))
        run_low = np.concatenate(([open_[0]], np.minimum.accumulate(low)[:-1]))
        path = DayPath(
            open_, high, low, close, volume, cum_volume, run_high, run_low,
            prev_close, float(rng.uniform(0, 2 * math.pi)),
        )  # fmt: skip
        with self._days_lock:
            self._days[key] = path
            if len(self._days) > self._cache_days:
                self._days.popitem(last=False)
        return path

    def _price_in_minute(self, path: DayPath, minute: int, frac: float) -> float:
        o, c = float(path.open[minute]), float(path.close[minute])
        hi, lo = float(path.high[minute]), float(path.low[minute])
        wiggle = (
            (hi - lo) * 0.45 * math.sin(math.pi * frac) * math.sin(6 * math.pi * frac + path.phase)
        )
        return min(hi, max(lo, o + (c - o) * frac + wiggle))

    def quote_at(self, symbol: str, ts: float) -> Quote:
        day, sec = divmod(ts, DAY)
        day_i = int(day)
        minute, within = divmod(sec, 60)
        m = int(minute)
        frac = within / 60.0
        path = self.day_path(symbol, day_i)
        price = self._price_in_minute(path, m, frac)
        last = round(price, 2)
        spread = max(0.01, round(last * 0.0002, 2))
        bid = round(last - spread / 2, 2)
        ask = round(bid + spread, 2)
        high = max(float(path.run_high[m]), float(path.open[m]), price)
        low = min(float(path.run_low[m]), float(path.open[m]), price)
        volume = int(path.cum_volume[m] + path.volume[m] * frac)
        size_seed = int(ts * 1000) % 97
        prev = round(path.prev_close, 2)
        return Quote(
            symbol=symbol,
            time=round(ts, 3),
            last=last,
            bid=bid,
            ask=ask,
            bid_size=100 * (1 + size_seed % 9),
            ask_size=100 * (1 + (size_seed * 7) % 9),
            open=round(float(path.open[0]), 2),
            high=round(high, 2),
            low=round(low, 2),
            prev_close=prev,
            volume=volume,
            change=round(last - prev, 2),
            change_pct=round((last - prev) / prev * 100, 3),
        )

    # -- bars -------------------------------------------------------------------
    def _minute_bars(self, symbol: str, day: int, now: float) -> tuple[np.ndarray, ...] | None:
        """The day's 1-minute OHLCV up to ``now`` (the forming minute truncated)."""
        if day * DAY > now:
            return None
        path = self.day_path(symbol, day)
        if (day + 1) * DAY <= now:
            return path.open, path.high, path.low, path.close, path.volume
        sec = now - day * DAY
        m = int(sec // 60)
        frac = (sec - m * 60) / 60.0
        price = self._price_in_minute(path, m, frac)
        o = path.open[: m + 1].copy()
        h = path.high[: m + 1].copy()
        lo = path.low[: m + 1].copy()
        c = path.close[: m + 1].copy()
        v = path.volume[: m + 1].copy()
        h[m] = max(o[m], price, self._max_so_far(path, m, frac))
        lo[m] = min(o[m], price, self._min_so_far(path, m, frac))
        c[m] = price
        v[m] = math.floor(path.volume[m] * frac)
        return o, h, lo, c, v

    def _max_so_far(self, path: DayPath, m: int, frac: float) -> float:
        samples = [self._price_in_minute(path, m, f * frac / 8) for f in range(9)]
        return max(samples)

    def _min_so_far(self, path: DayPath, m: int, frac: float) -> float:
        samples = [self._price_in_minute(path, m, f * frac / 8) for f in range(9)]
        return min(samples)

    def _daily_bar(
        self, symbol: str, day: int, now: float
    ) -> tuple[float, float, float, float, float] | None:
        cache = self._daily.setdefault(symbol, {})
        bar = cache.get(day)
        if bar is not None:
            return bar
        bars = self._minute_bars(symbol, day, now)
        if bars is None:
            return None
        o, h, lo, c, v = bars
        bar = (float(o[0]), float(h.max()), float(lo.min()), float(c[-1]), float(v.sum()))
        if (day + 1) * DAY <= now:  # only closed days are immutable
            cache[day] = bar
        return bar

    def history_at(
        self,
        symbol: str,
        resolution: Resolution,
        start: int,
        end: int,
        countback: int | None,
        *,
        now: float,
    ) -> History:
        self._inst(symbol)
        first_time = EPOCH_DAY * DAY
        end = min(end, int(now) + 1)
        if countback:
            last_start = resolution.bar_start(end - 1)
            start = last_start
            for _ in range(countback - 1):
                start = _previous_bar_start(resolution, start)
                if start <= first_time:
                    break
        start = max(start, first_time)
        if end <= start:
            return History(bars=[], next_time=self._next_time(resolution, start, now))
        if resolution.intraday:
            bars = self._intraday_bars(symbol, resolution, start, end, now)
        else:
            bars = self._period_bars(symbol, resolution, start, end, now)
        if countback:
            bars = bars[-countback:]
        if not bars:
            return History(bars=[], next_time=self._next_time(resolution, start, now))
        return History(bars=bars)

    @staticmethod
    def _next_time(resolution: Resolution, start: int, now: float) -> int | None:
        """UDF ``nextTime``: the latest bar that exists before the requested range."""
        before = min(start, int(now) + 1) - 1
        if before < EPOCH_DAY * DAY:
            return None
        return resolution.bar_start(before)

    def _intraday_bars(
        self, symbol: str, res: Resolution, start: int, end: int, now: float
    ) -> list[Bar]:
        step = int(res.value)
        out: list[Bar] = []
        for day in range(start // DAY, (end - 1) // DAY + 1):
            time.sleep(0)  # let the event loop's thread have the GIL between days
            day_bars = self._minute_bars(symbol, day, now)
            if day_bars is None:
                break
            o, h, lo, c, v = day_bars
            idx = np.arange(0, len(o), step)
            bo = o[idx]
            bh = np.maximum.reduceat(h, idx)
            bl = np.minimum.reduceat(lo, idx)
            bc = c[np.minimum(idx + step, len(c)) - 1]
            bv = np.add.reduceat(v, idx)
            times = day * DAY + idx * 60
            keep = (times >= start) & (times < end)
            out.extend(_bars(times[keep], bo[keep], bh[keep], bl[keep], bc[keep], bv[keep]))
        return out

    def _period_bars(
        self, symbol: str, res: Resolution, start: int, end: int, now: float
    ) -> list[Bar]:
        rows: list[list[float]] = []
        period = res.bar_start(start)
        while period < end:
            nxt = res.next_bar_start(period)
            agg: list[float] | None = None
            for day in range(period // DAY, nxt // DAY):
                if day not in self._daily.get(symbol, ()):
                    time.sleep(0)  # a day to compute: let the event loop have the GIL first
                bar = self._daily_bar(symbol, day, now)
                if bar is None:
                    break
                if agg is None:
                    agg = [float(period), *bar]
                else:
                    agg[2] = max(agg[2], bar[1])
                    agg[3] = min(agg[3], bar[2])
                    agg[4] = bar[3]
                    agg[5] += bar[4]
            if agg is None:
                break
            if period >= start:
                rows.append(agg)
            period = nxt
        if not rows:
            return []
        cols = np.array(rows).T
        return _bars(cols[0].astype(np.int64), cols[1], cols[2], cols[3], cols[4], cols[5])


def _previous_bar_start(res: Resolution, bar_start: int) -> int:
    return res.bar_start(bar_start - 1)


def _bars(
    times: np.ndarray, o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray, v: np.ndarray
) -> list[Bar]:
    o2, c2 = np.round(o, 2), np.round(c, 2)
    h2 = np.maximum(np.round(h, 2), np.maximum(o2, c2))
    l2 = np.minimum(np.round(lo, 2), np.minimum(o2, c2))
    return [
        Bar.model_construct(time=t, open=a, high=b, low=d, close=e, volume=f)
        for t, a, b, d, e, f in zip(
            times.tolist(),
            o2.tolist(),
            h2.tolist(),
            l2.tolist(),
            c2.tolist(),
            v.tolist(),
            strict=True,
        )
    ]


def _info(inst: Instrument) -> SymbolInfo:
    return SymbolInfo(
        symbol=inst.symbol,
        description=inst.description,
        exchange=inst.exchange,
        type=inst.type,
        sector=inst.sector,
        session="24x7",
        timezone="Etc/UTC",
    )
