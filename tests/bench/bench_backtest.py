"""Backtest throughput: 1-minute bars per second, ours (the full live path) beside backtrader.

Ours: the momentum job on 1-minute bars, fired every minute of the regular session on 10
symbols, through ``run_backtest`` (kairos, the account's engine with every risk check, the
paper broker, a Redis of its own). Baseline, in the same run and on the same bars (the
simulated feed's regular-session 1-minute bars): backtrader running the same indicator
logic with the same parameters (Wilder RSI 14 at or below 30 and volume over 1.5 x the
mean of the 20 bars before it to buy 5% of equity with a 3% stop and a 6% target, at most
3 positions; RSI at or above 70 to exit).

Bars counted: the regular-session 1-minute bars the run covers x symbols, for both.
Default: one year (2025); ``--quick``: one week; ``--days N``: the first N calendar days.
Run: ``python -m tests.bench.bench_backtest [--quick] [--days N] [--profile]``.
"""

from __future__ import annotations

import asyncio
import cProfile
import pstats
import resource
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from app.backtest.runner import BacktestConfig, fire_times, run_backtest
from app.feeds.simulated import SimulatedFeed
from app.kairos.jobs import LoadedJob, parse_job
from app.kairos.runner import Kairos
from app.models.market import Bar, Resolution
from tests.bench.common import record

SYMBOLS = ["AAPL", "MSFT", "GOOGL", "AMZN", "NVDA", "TSLA", "AMD", "META", "NFLX", "INTC"]
START = datetime(2025, 1, 1, tzinfo=UTC)
PARAMS = {
    "resolution": "1",
    "history_bars": 150,
    "rsi_period": 14,
    "rsi_oversold": 30,
    "rsi_overbought": 70,
    "volume_period": 20,
    "volume_multiplier": 1.5,
}
RISK = {"position_size": 0.05, "stop_loss": 0.03, "take_profit": 0.06, "max_positions": 3}


def job() -> LoadedJob:
    doc = {
        "name": "bench_momentum",
        "schedule": "* * * * 1-5",
        "calendar": "XNYS",
        "session": "regular",
        "strategy": "momentum",
        "symbols": SYMBOLS,
        "parameters": PARAMS,
        "risk": RISK,
    }
    return parse_job(doc, Path("bench_momentum.yaml"))


def session_bars(end: datetime) -> dict[str, list[Bar]]:
    """Each symbol's 1-minute bars that completed at a fire time of the job (the regular
    session's minutes): what our run covers, and what backtrader gets."""
    kairos = Kairos([job()], None, clock=None)  # type: ignore[arg-type]
    fires = {int(t.timestamp()) - 60 for t, _ in fire_times(kairos, START, end)}
    feed = SimulatedFeed(SYMBOLS, seed=42)
    out = {}
    for s in SYMBOLS:
        bars = feed.history_at(
            s,
            Resolution.M1,
            int(START.timestamp()),
            int(end.timestamp()),
            None,
            now=end.timestamp(),
        ).bars
        out[s] = [b for b in bars if b.time in fires]
    return out


def cpu() -> float:
    """CPU seconds of this process and its waited-for children (the run's redis-server): on
    a busy machine wall time counts the other tenants too."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def run_ours(end: datetime, profile: bool) -> tuple[float, float, dict[str, Any]]:
    config = BacktestConfig(jobs=[job()], start=START, end=end, name="bench")
    prof = cProfile.Profile() if profile else None
    t0, c0 = time.perf_counter(), cpu()
    if prof is not None:
        prof.enable()
    result = asyncio.run(run_backtest(config))
    if prof is not None:
        prof.disable()
    elapsed, used = time.perf_counter() - t0, cpu() - c0
    if prof is not None:
        stats = pstats.Stats(prof).sort_stats("cumulative")
        stats.print_stats(35)
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    info = {"runs": result.runs, "alerts": len(result.decisions), "fills": len(result.fills)}
    return elapsed, used, info


def run_backtrader(bars: dict[str, list[Bar]]) -> tuple[float, float, dict[str, Any]]:
    import backtrader as bt
    import pandas as pd

    class Momentum(bt.Strategy):  # type: ignore[misc]
        params = (
            ("rsi_period", PARAMS["rsi_period"]),
            ("oversold", PARAMS["rsi_oversold"]),
            ("overbought", PARAMS["rsi_overbought"]),
            ("volume_period", PARAMS["volume_period"]),
            ("multiplier", PARAMS["volume_multiplier"]),
        )

        def __init__(self) -> None:
            self.rsi = {
                d: bt.indicators.RSI(d.close, period=self.p.rsi_period, safediv=True)
                for d in self.datas
            }
            # the mean of the 20 volumes before the last bar
            self.vavg = {
                d: bt.indicators.SMA(d.volume(-1), period=self.p.volume_period) for d in self.datas
            }
            self.signals = 0

        def next(self) -> None:
            held = sum(1 for d in self.datas if self.getposition(d).size)
            for d in self.datas:
                value = self.rsi[d][0]
                if self.getposition(d).size:
                    if value >= self.p.overbought:
                        self.close(d)
                        self.signals += 1
                    continue
                avg = self.vavg[d][0]
                if value > self.p.oversold or avg <= 0 or d.volume[0] / avg < self.p.multiplier:
                    continue
                if held >= RISK["max_positions"]:
                    continue
                price = d.close[0]
                size = int(self.broker.getvalue() * RISK["position_size"] / price)
                if size > 0:
                    self.buy_bracket(
                        data=d,
                        size=size,
                        exectype=bt.Order.Market,
                        stopprice=round(price * (1 - RISK["stop_loss"]), 2),
                        limitprice=round(price * (1 + RISK["take_profit"]), 2),
                    )
                    held += 1
                    self.signals += 1

    t0, c0 = time.perf_counter(), cpu()
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.broker.setcash(100_000.0)
    for symbol, rows in bars.items():
        frame = pd.DataFrame(
            {
                "open": [b.open for b in rows],
                "high": [b.high for b in rows],
                "low": [b.low for b in rows],
                "close": [b.close for b in rows],
                "volume": [b.volume for b in rows],
            },
            index=pd.to_datetime([b.time for b in rows], unit="s"),
        )
        feed = bt.feeds.PandasData(
            dataname=frame, timeframe=bt.TimeFrame.Minutes, compression=1, openinterest=None
        )
        cerebro.adddata(feed, name=symbol)
    cerebro.addstrategy(Momentum)
    strategy = cerebro.run(runonce=False)[0]
    elapsed, used = time.perf_counter() - t0, cpu() - c0
    return (
        elapsed,
        used,
        {"signals": strategy.signals, "final": round(cerebro.broker.getvalue(), 2)},
    )


def main() -> None:
    argv = sys.argv[1:]
    days = 7 if "--quick" in argv else 365
    if "--days" in argv:
        days = int(argv[argv.index("--days") + 1])
    end = START + timedelta(days=days) - timedelta(seconds=1)
    bars = session_bars(end)
    count = sum(len(b) for b in bars.values())
    print(f"backtest: {len(SYMBOLS)} symbols, {days} days, {count:,} 1-minute bars in session")
    theirs, theirs_cpu, bt_info = run_backtrader(bars)
    ours, ours_cpu, our_info = run_ours(end, "--profile" in argv)
    for label, wall, used, info in (
        ("backtrader (same bars, same logic)", theirs, theirs_cpu, bt_info),
        ("trader-ops backtest (full live path)", ours, ours_cpu, our_info),
    ):
        print(
            f"{label:<38} {wall:8.1f} s {count / wall:10,.0f} bars/s wall"
            f" | {used:8.1f} s {count / used:10,.0f} bars/s CPU  {info}"
        )
    print(
        f"ours / backtrader bars per second: {theirs / ours:.3f}x wall, "
        f"{theirs_cpu / ours_cpu:.3f}x CPU"
    )
    record(
        f"backtest momentum, 10 symbols, {days} d of 1-min bars",
        ours * 1000,
        ours * 1000,
        count / ours,
        unit="bars/s",
        base=(theirs * 1000, theirs * 1000, count / theirs),
    )


if __name__ == "__main__":
    main()
