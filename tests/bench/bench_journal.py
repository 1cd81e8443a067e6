"""Journal benchmark: 10,000 fills across 50 symbols and 20 days into a local Parse Server.

Run: ``.venv/bin/python -m tests.bench.bench_journal`` (needs scripts/setup.sh done).
Starts its own redis-server, PostgreSQL+PostGIS and parse-server on free ports.
Prints the journal's throughput, per-batch p50/p99, the backlog curve, and a same-run
baseline: raw Parse REST creates of the same number of small documents (10 per /batch).
Target: all 10,000 fills journaled in <= 60 s.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from app.bus import Keys, create_redis
from app.journal.client import TradeNoteClient
from app.journal.sync import Journal, JournalConfig
from app.journal.worker import JournalWorker, backlog
from app.models.orders import Fill, Intent
from tests.bench.common import record
from tests.journal_servers import tradenote_backend
from tests.servers import redis_server

NY = ZoneInfo("America/New_York")


def make_fills(n: int, symbols: int, days: int) -> list[Fill]:
    start = date(2025, 1, 6)
    fills: list[Fill] = []
    per_day = n // days
    for d in range(days):
        day = start + timedelta(days=d + 2 * (d // 5))  # weekdays
        open_ts = datetime(day.year, day.month, day.day, 9, 30, tzinfo=NY).timestamp()
        for i in range(per_day):
            k = d * per_day + i
            sym = f"SYM{k % symbols:02d}"
            # per symbol: buy, buy, sell, sell (scale in, partial closes, flat)
            phase = (k // symbols) % 4
            intent = Intent.BUY if phase < 2 else Intent.SELL
            fills.append(
                Fill(id=f"b{k}", order_id=f"o{k}", broker="paper" if k % 3 else "tradier",
                     account="a", symbol=sym, intent=intent, quantity=10,
                     price=100 + (k % 17) * 0.25, commission=0.1, time=open_ts + i * 2.0)
            )  # fmt: skip
    return fills


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def baseline(parse: Any, n: int) -> tuple[float, list[float]]:
    """Raw Parse REST: create n small documents, 10 per /batch (one round trip each)."""
    client = TradeNoteClient(parse.base_url, parse.app_id, parse.master_key)
    latencies: list[float] = []
    started = time.perf_counter()
    try:
        for i in range(0, n, 10):
            reqs = [
                {"method": "POST", "path": "classes/benchRaw", "body": {"n": j, "v": "x" * 100}}
                for j in range(i, min(n, i + 10))
            ]
            t = time.perf_counter()
            await client.batch(reqs)
            latencies.append(time.perf_counter() - t)
    finally:
        await client.close()
    return time.perf_counter() - started, latencies


async def run(n: int, symbols: int, days: int, batch: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-journal-"))
    with redis_server(tmp / "redis") as rsrv, tradenote_backend(tmp) as (_pg, parse):
        parse.call("POST", "schemas/benchRaw", {"className": "benchRaw"})
        parse.signup("bench", "bench-pw")
        redis = create_redis(rsrv.url)
        fills = make_fills(n, symbols, days)
        pipe = redis.pipeline(transaction=False)
        for f in fills:
            pipe.xadd(Keys.FILLS_STREAM, {"fill": f.model_dump_json()})
        await pipe.execute()

        client = TradeNoteClient(parse.base_url, parse.app_id, parse.master_key, timeout=60)
        journal = Journal(client, redis, JournalConfig(username="bench", tz=NY), owner="bench")
        worker = JournalWorker(redis, journal, consumer="bench", batch_size=batch, block_ms=10)
        await worker.ensure_group()
        curve: list[tuple[float, int]] = [(0.0, (await backlog(redis))["backlog"])]
        batch_times: list[float] = []
        started = time.perf_counter()
        while True:
            t = time.perf_counter()
            done = await worker.step()
            if done:
                batch_times.append(time.perf_counter() - t)
            left = (await backlog(redis))["backlog"]
            curve.append((time.perf_counter() - started, left))
            if left == 0:
                break
        elapsed = time.perf_counter() - started
        await client.close()

        session = parse.login("bench", "bench-pw")
        docs = parse.ui_trades(session, 0, 2**40)
        journaled = sum(len(d["executions"]) for d in docs)
        base_elapsed, base_lat = await baseline(parse, n)
        await redis.aclose()

    print(f"journal: {n} fills, {symbols} symbols, {days} days, batch {batch}")
    print(f"  journaled {journaled} executions in {len(docs)} day documents")
    print(f"  total {elapsed:.2f} s  throughput {n / elapsed:,.0f} fills/s  (target <= 60 s)")
    print(
        f"  per batch of {batch}: p50 {statistics.median(batch_times) * 1000:.0f} ms  "
        f"p99 {pct(batch_times, 0.99) * 1000:.0f} ms  ({len(batch_times)} batches)"
    )
    record(
        f"journal {n} fills into Parse (batch {batch})",
        statistics.median(batch_times) * 1000,
        pct(batch_times, 0.99) * 1000,
        n / elapsed,
        unit="fills/s",
        base=(statistics.median(base_lat) * 1000, pct(base_lat, 0.99) * 1000, n / base_elapsed),
    )
    print(f"baseline: raw Parse REST create of {n} small documents, 10 per /batch")
    print(
        f"  total {base_elapsed:.2f} s  throughput {n / base_elapsed:,.0f} docs/s  "
        f"p50 {statistics.median(base_lat) * 1000:.1f} ms  p99 {pct(base_lat, 0.99) * 1000:.1f} ms"
    )
    print("backlog curve (seconds -> fills not yet in TradeNote):")
    step = max(1, len(curve) // 12)
    for ts, left in [*curve[::step], curve[-1]]:
        bar = "#" * int(40 * left / max(1, n))
        print(f"  {ts:7.2f} s {left:6d} {bar}")
    if journaled != n:
        raise SystemExit(f"FAIL: {journaled} executions journaled, expected {n}")
    if elapsed > 60:
        raise SystemExit(f"FAIL: {elapsed:.1f} s > 60 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fills", type=int, default=10_000)
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--days", type=int, default=20)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    asyncio.run(run(args.fills, args.symbols, args.days, args.batch))


if __name__ == "__main__":
    main()
