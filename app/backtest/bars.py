"""Bars from files (``--bars DIR``): one CSV per symbol and resolution, read once.

``DIR/AAPL_1.csv`` holds AAPL's 1-minute bars, ``AAPL_5.csv`` 5-minute, ``AAPL_D.csv``
daily (the resolution as the UDF writes it). Columns, by header: ``time`` (Unix seconds
or an ISO 8601 date-time; the bar's start, UTC when no offset is given), ``open``,
``high``, ``low``, ``close`` and optionally ``volume``. A job asking a resolution the
files do not have gets the finest finer file rolled up (1-minute bars make 5-minute
ones); quotes between bars are the last completed bar's close (bid = ask = close: the
paper broker's slippage is the spread).
"""

from __future__ import annotations

import bisect
import csv
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

from app.feeds.tradier import aggregate
from app.models.market import Bar, History, Quote, Resolution

NEEDED = ("time", "open", "high", "low", "close")


class BarFileError(ValueError):
    """A bar file that cannot be used (the message names the file and the line)."""


def _time(raw: str, where: str) -> int:
    raw = raw.strip()
    try:
        return int(float(raw))
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise BarFileError(f"{where}: time {raw!r} is neither Unix seconds nor ISO 8601") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp())


def read_bars(path: Path) -> list[Bar]:
    """A bar file's bars, ascending; BarFileError names what is wrong."""
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise BarFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    with handle:
        reader = csv.DictReader(handle)
        header = [h.strip().lower() for h in reader.fieldnames or []]
        missing = [c for c in NEEDED if c not in header]
        if missing:
            raise BarFileError(f"{path}: missing column(s) {', '.join(missing)} (header: {header})")
        reader.fieldnames = header
        bars: list[Bar] = []
        for line, row in enumerate(reader, start=2):
            where = f"{path}:{line}"
            try:
                o, h, lo, c = (float(row[k]) for k in ("open", "high", "low", "close"))
                volume = float(row.get("volume") or 0.0)
            except (TypeError, ValueError):
                raise BarFileError(f"{where}: a price or volume is not a number") from None
            if not (lo <= min(o, c) and h >= max(o, c) and lo > 0):
                raise BarFileError(f"{where}: high/low do not contain open/close, or a price <= 0")
            bars.append(
                Bar(time=_time(row["time"], where), open=o, high=h, low=lo, close=c, volume=volume)
            )
    bars.sort(key=lambda b: b.time)
    for a, b in pairwise(bars):
        if a.time == b.time:
            raise BarFileError(f"{path}: two bars start at {a.time}")
    return bars


class BarFiles:
    """The bars of ``directory`` for ``symbols``, in the shape the backtest reads a feed."""

    name = "files"

    def __init__(self, directory: Path, symbols: Sequence[str], clock: Callable[[], float]) -> None:
        self.clock = clock
        if not directory.is_dir():
            raise BarFileError(f"--bars {directory}: not a directory")
        self.directory = directory
        self.files: dict[tuple[str, Resolution], list[Bar]] = {}
        for symbol in symbols:
            found = False
            for res in Resolution:
                path = directory / f"{symbol}_{res.value}.csv"
                if path.is_file():
                    found_bars = read_bars(path)
                    if not found_bars:
                        raise BarFileError(f"{path}: no bars")
                    self.files[(symbol, res)] = found_bars
                    found = True
            if not found:
                raise BarFileError(f"--bars {directory}: no {symbol}_<resolution>.csv for {symbol}")
        self._rolled: dict[tuple[str, Resolution], list[Bar]] = {}
        self._finest = {
            s: min((r for (sym, r) in self.files if sym == s), key=lambda r: r.seconds)
            for s in symbols
        }
        # the end of each bar of the finest file, for quotes
        self._ends = {
            s: [b.time + r.seconds for b in self.files[(s, r)]] for s, r in self._finest.items()
        }

    def bars(self, symbol: str, resolution: Resolution) -> list[Bar]:
        exact = self.files.get((symbol, resolution))
        if exact is not None:
            return exact
        rolled = self._rolled.get((symbol, resolution))
        if rolled is None:
            finer = [r for (s, r) in self.files if s == symbol and r.seconds <= resolution.seconds]
            if not finer:
                raise BarFileError(
                    f"{symbol}: the job asks {resolution.value} bars; the files are coarser"
                )
            base = self.files[(symbol, max(finer, key=lambda r: r.seconds))]
            rolled = aggregate((b.model_copy() for b in base), resolution)
            self._rolled[(symbol, resolution)] = rolled
        return rolled

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
        """Bars starting in [start, end), never one starting after ``now``; the last
        ``countback`` of those before ``end`` when given."""
        bars = self.bars(symbol, resolution)
        times = [b.time for b in bars]
        hi = bisect.bisect_left(times, min(end, int(now) + 1))
        lo = max(0, hi - countback) if countback else bisect.bisect_left(times, start)
        return History(bars=bars[lo:hi])

    def quote_at(self, symbol: str, ts: float) -> Quote:
        """The close of the last bar completed by ``ts`` (of the finest file)."""
        bars = self.files[(symbol, self._finest[symbol])]
        i = bisect.bisect_right(self._ends[symbol], ts) - 1
        bar = bars[max(i, 0)]
        return Quote(symbol=symbol, time=ts, last=bar.close, bid=bar.close, ask=bar.close)

    async def quotes(self, symbols: Sequence[str]) -> dict[str, Quote]:
        now = self.clock()
        return {s: self.quote_at(s, now) for s in symbols if s in self._finest}

    async def close(self) -> None:
        return None
