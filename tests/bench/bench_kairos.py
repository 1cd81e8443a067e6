"""Kairos momentum cycle: 50 symbols of 5-minute bars from a fake datahub on loopback.

Prints p50/p99 and cycles/s for the full cycle (fetch 150 bars x 50 symbols over HTTP,
RSI + volume breakout, no posting) beside a same-run baseline that only fetches the bars,
so the strategy's own cost is the difference. Run: ``python -m tests.bench.bench_kairos``.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

from app.feeds.simulated import SimulatedFeed
from app.kairos.datahub_client import DatahubClient
from app.kairos.jobs import parse_job
from app.kairos.runner import Kairos
from app.kairos.testing import FakeDatahub
from app.models.market import Resolution
from tests.bench.common import record

SYMBOLS = [f"S{i:02d}" for i in range(50)]
NOW = datetime(2026, 11, 25, 18, 0, 5, tzinfo=UTC)  # mid-session, a bar just completed
WARMUP, ROUNDS = 3, 40


def _stats(label: str, samples: list[float]) -> str:
    s = sorted(samples)
    p50 = statistics.median(s)
    p99 = s[min(len(s) - 1, round(0.99 * (len(s) - 1)))]
    rate = len(s) / sum(s)
    return f"{label:<34} p50 {p50 * 1e3:8.2f} ms   p99 {p99 * 1e3:8.2f} ms   {rate:7.1f} cycles/s"


async def main() -> None:
    job = parse_job(
        {
            "name": "bench_momentum",
            "schedule": "*/5 * * * *",
            "strategy": "momentum",
            "symbols": SYMBOLS,
            "parameters": {"history_bars": 150},
            "risk": {"position_size": 0.05, "stop_loss": 0.03, "take_profit": 0.06},
        },
        Path("bench.yaml"),
    )
    feed = SimulatedFeed(SYMBOLS, seed=42)
    async with FakeDatahub(hmac_key=b"bench", feed=feed) as hub:
        client = DatahubClient(hub.url, hmac_key=b"bench")
        kairos = Kairos([job], client)
        async with client:

            async def baseline() -> None:
                await kairos.fetch_bars(SYMBOLS, Resolution.M5, 150, NOW)

            async def cycle() -> None:
                report = await kairos.run_job("bench_momentum", now=NOW, dry_run=True)
                assert report.outcome == "ok", report.error

            results: dict[str, list[float]] = {"baseline": [], "cycle": []}
            for i in range(WARMUP + ROUNDS):
                for name, fn in (("baseline", baseline), ("cycle", cycle)):  # interleaved
                    t0 = time.perf_counter()
                    await fn()
                    if i >= WARMUP:
                        results[name].append(time.perf_counter() - t0)
            # Strategy cost alone, on bars already in memory.
            ctx = await kairos.gather_context(kairos.jobs["bench_momentum"], NOW)
            evals: list[float] = []
            for _ in range(ROUNDS):
                t0 = time.perf_counter()
                kairos.jobs["bench_momentum"].strategy.evaluate(ctx)
                evals.append(time.perf_counter() - t0)
    bars = sum(len(v) for v in ctx.bars.values())
    print(f"kairos momentum cycle: {len(SYMBOLS)} symbols, {bars} bars, {ROUNDS} rounds")
    print(_stats("baseline: fetch bars only", results["baseline"]))
    print(_stats("cycle: fetch + RSI/volume (dry)", results["cycle"]))
    print(_stats("evaluate only (in memory)", evals))
    overhead = statistics.median(results["cycle"]) - statistics.median(results["baseline"])
    print(f"strategy overhead vs baseline (p50): {overhead * 1e3:.2f} ms")
    c, b = sorted(results["cycle"]), sorted(results["baseline"])
    record(
        f"kairos momentum cycle, {len(SYMBOLS)} symbols",
        statistics.median(c) * 1000,
        c[min(len(c) - 1, int(len(c) * 0.99))] * 1000,
        len(c) / sum(c),
        unit="cycles/s",
        base=(
            statistics.median(b) * 1000,
            b[min(len(b) - 1, int(len(b) * 0.99))] * 1000,
            len(b) / sum(b),
        ),
    )


if __name__ == "__main__":
    asyncio.run(main())
