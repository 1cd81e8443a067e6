"""The simulated feed's history bodies, computed in a worker process.

Bars for decades of days are seconds of CPU. In a thread they would still hold the
GIL the event loop needs; in a separate, lower-priority process they cost the loop
one pipe read of the finished JSON body. The worker rebuilds the same deterministic
model from (symbols, seed): prices are a function of (seed, symbol, time) only.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING

import orjson

from app.models.market import Resolution
from app.procs import die_with_parent

if TYPE_CHECKING:
    from app.feeds.simulated import SimulatedFeed

_feed: SimulatedFeed | None = None  # the worker process's own model


def _init(symbols: list[str], seed: int) -> None:
    global _feed
    # Ctrl-C in a terminal reaches the whole process group: the parent stops this worker
    # (pool shutdown, or SIGTERM when it dies), so the worker itself ignores SIGINT
    # rather than printing a KeyboardInterrupt traceback from its queue read.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from app.feeds.simulated import SimulatedFeed

    die_with_parent()
    with contextlib.suppress(OSError):
        os.nice(10)  # the datahub's event loop comes first when CPUs are short
    _feed = SimulatedFeed(symbols, seed=seed)


def _body(
    symbol: str, resolution: str, start: int, end: int, countback: int | None, now: float
) -> bytes:
    assert _feed is not None, "worker not initialised"
    res = Resolution.parse(resolution)
    history = _feed.history_at(symbol, res, start, end, countback, now=now)
    return orjson.dumps(history.udf_columns())


class BarWorker:
    """One worker process, started on first use, shut down with the feed."""

    def __init__(self, symbols: Sequence[str], seed: int) -> None:
        self.symbols = list(symbols)
        self.seed = seed
        self._pool: ProcessPoolExecutor | None = None

    async def body(
        self,
        symbol: str,
        resolution: Resolution,
        start: int,
        end: int,
        countback: int | None,
        now: float,
    ) -> bytes:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),  # no fork of a threaded loop
                initializer=_init,
                initargs=(self.symbols, self.seed),
            )
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(
                self._pool, _body, symbol, resolution.value, start, end, countback, now
            )
        except BrokenProcessPool:
            self._pool = None  # the worker died (killed, OOM): a new one next time
            raise

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:  # waits for a running computation (bounded by max bars)
            await asyncio.to_thread(pool.shutdown, True, cancel_futures=True)
