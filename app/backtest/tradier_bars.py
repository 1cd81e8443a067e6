"""``--tradier``: a backtest's bars from Tradier's history, cached on disk as bar files
(``bars.py``'s format, ``<cache>/<SYMBOL>_<resolution>.csv``), so a second run of the same
range reads no network and both runs see the same bars.

Tradier keeps intraday history for a few weeks only (1-minute bars about 20 trading days,
5- and 15-minute about 40); daily bars go back years. A range the cache covers is not asked
again; one it does not is fetched whole and the file replaced.
"""

from __future__ import annotations

import asyncio
import csv
from collections.abc import Sequence
from pathlib import Path

from app.backtest.bars import read_bars
from app.feeds.base import Feed
from app.models.market import Bar, Resolution

COVERS = ".covers"  # beside each file: the [start, end) it was fetched for


def _covered(path: Path, start: int, end: int) -> bool:
    marker = path.with_name(path.name + COVERS)
    try:
        first, last = (int(x) for x in marker.read_text().split())
    except (OSError, ValueError):
        return False
    return path.is_file() and first <= start and last >= end


def write_bars(path: Path, bars: Sequence[Bar]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["time", "open", "high", "low", "close", "volume"])
        for b in bars:
            writer.writerow([b.time, b.open, b.high, b.low, b.close, b.volume])
    tmp.replace(path)


def _store(path: Path, bars: Sequence[Bar], start: int, end: int) -> None:
    write_bars(path, bars)
    read_bars(path)  # what was written reads back (a bad answer fails here, named)
    path.with_name(path.name + COVERS).write_text(f"{start} {end}\n")


async def cache_bars(
    feed: Feed,
    symbols: Sequence[str],
    resolution: Resolution,
    start: int,
    end: int,
    directory: Path,
) -> list[str]:
    """Fetch what the cache lacks; the symbols fetched (the others were on disk)."""
    await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
    fetched = []
    for symbol in symbols:
        path = directory / f"{symbol}_{resolution.value}.csv"
        if await asyncio.to_thread(_covered, path, start, end):
            continue
        history = await feed.history(symbol, resolution, start, end)
        await asyncio.to_thread(_store, path, history.bars, start, end)
        fetched.append(symbol)
    return fetched
