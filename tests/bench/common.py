"""Shared pieces for the benchmarks: percentiles, open/closed-loop load, a results table."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from app.embedded import stop_process
from tests.servers import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@dataclass
class Result:
    scenario: str
    p50_ms: float
    p99_ms: float
    throughput: float  # operations per second
    count: int
    errors: int = 0


def summarize(scenario: str, latencies: list[float], elapsed: float, errors: int = 0) -> Result:
    if not latencies:
        return Result(scenario, float("nan"), float("nan"), 0.0, 0, errors)
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return Result(
        scenario,
        statistics.median(ordered) * 1000,
        p99 * 1000,
        len(ordered) / elapsed,
        len(ordered),
        errors,
    )


async def open_loop(
    call: Callable[[int], Awaitable[bool]], rate: float, duration: float
) -> tuple[list[float], float, int]:
    """Fire ``rate`` calls per second on a fixed schedule; latency counts from the scheduled
    start, so a stalled server is not hidden (no coordinated omission)."""
    latencies: list[float] = []
    errors = 0
    tasks: list[asyncio.Task[None]] = []
    start = time.perf_counter()
    total = int(rate * duration)

    async def one(i: int, scheduled: float) -> None:
        nonlocal errors
        ok = await call(i)
        if ok:
            latencies.append(time.perf_counter() - scheduled)
        else:
            errors += 1

    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, scheduled)))
    await asyncio.gather(*tasks)
    return latencies, time.perf_counter() - start, errors


async def closed_loop(
    call: Callable[[int], Awaitable[bool]], concurrency: int, duration: float
) -> tuple[list[float], float, int]:
    """``concurrency`` workers back to back for ``duration`` seconds: the saturation point."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + duration
    counter = iter(range(10**9))

    async def worker() -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            if await call(next(counter)):
                latencies.append(time.perf_counter() - t0)
            else:
                errors += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, time.perf_counter() - start, errors


class Process:
    """A service in its own process (so the load generator does not share its event loop)."""

    def __init__(self, argv: list[str], env: dict[str, str], port: int) -> None:
        self.port = port
        self.log = tempfile.NamedTemporaryFile(prefix="bench-", suffix=".log", delete=False)  # noqa: SIM115
        self.proc = subprocess.Popen(
            argv, env={**os.environ, **env}, cwd=ROOT, stdout=self.log, stderr=self.log
        )
        wait_for_port(port, timeout=30, proc=self.proc)  # type: ignore[arg-type]

    def stop(self) -> None:
        stop_process(self.proc, timeout=15)


def start_baseline() -> Process:
    port = free_port()
    argv = [
        str(BIN / "uvicorn"),
        "tests.bench.baseline_app:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    return Process(argv, {}, port)


def print_table(rows: list[tuple[Result, Result | None]], title: str) -> None:
    print(f"\n{title}")
    header = f"{'scenario':<60} {'p50 ms':>9} {'p99 ms':>9} {'ops/s':>9} {'n':>7} {'err':>4} | {'base p50':>9} {'base p99':>9} {'base ops/s':>10} | {'p99 x':>6}"
    print(header)
    print("-" * len(header))
    for r, b in rows:
        base = (
            f"{b.p50_ms:>9.3f} {b.p99_ms:>9.3f} {b.throughput:>10.0f}"
            if b
            else f"{'':>9} {'':>9} {'':>10}"
        )
        ratio = f"{r.p99_ms / b.p99_ms:>6.1f}" if b and b.p99_ms else f"{'':>6}"
        print(
            f"{r.scenario:<60} {r.p50_ms:>9.3f} {r.p99_ms:>9.3f} {r.throughput:>9.0f} {r.count:>7} {r.errors:>4} | {base} | {ratio}"
        )


def record(
    scenario: str,
    p50_ms: float,
    p99_ms: float,
    throughput: float,
    *,
    unit: str = "ops/s",
    base: tuple[float, float, float] | None = None,
) -> None:
    """Add a row to the combined ``make bench`` table (BENCH_RESULTS names a JSON-lines file)."""
    path = os.environ.get("BENCH_RESULTS")
    if not path:
        return
    row = {
        "scenario": scenario,
        "p50_ms": p50_ms,
        "p99_ms": p99_ms,
        "throughput": throughput,
        "unit": unit,
        "base": base,
    }
    with open(path, "a") as out:
        out.write(json.dumps(row) + "\n")
