"""An iron condor alert against a plain stock alert, in the same run: decided (chain
cached), risk-checked and placed on the paper broker through the engine.

    .venv/bin/python -m tests.bench.bench_options [--quick]

Goal (issue 23): the condor's p50/p99 within 2x of the stock alert's. The stock alert is
the baseline column; both go through ``ExecutionEngine.handle_alert`` with Redis.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from redis.asyncio import Redis

from app.brokers.paper import PaperBroker
from app.execution.engine import ExecutionEngine
from app.execution.store import ExecutionStore
from app.models.alerts import Alert
from app.models.instruments import multiplier_of
from app.models.market import Quote
from app.options.chains import OptionChains
from app.portfolio.book import AccountBook
from app.procs import settle_heap
from app.risk.engine import RiskEngine
from app.risk.limits import parse_limits
from tests.bench.common import Result, print_table, record, summarize
from tests.servers import redis_server
from tests.support.chains import FakeChains
from tests.support.limits import PERMISSIVE


async def quotes_for(feed: FakeChains, symbol: str) -> Quote | None:
    if symbol in (feed.underlying, "AAPL"):
        p = feed.price if symbol == feed.underlying else 200.0
        return Quote(symbol=symbol, time=time.time(), last=p, bid=p - 0.01, ask=p + 0.01)
    return feed.quote(symbol)


async def run(redis: Redis, n: int) -> list[Result]:
    feed = FakeChains()
    memo: dict[str, Quote | None] = {}

    async def get(symbol: str) -> Quote | None:  # a quote cache, as the datahub's
        if symbol not in memo:
            memo[symbol] = await quotes_for(feed, symbol)
        return memo[symbol]

    book = AccountBook(account="default", cash=0.0, multiplier_of=multiplier_of)
    limits = {
        **PERMISSIVE,
        **dict.fromkeys(("max_open_positions", "position_size", "concentration", "leverage")),
        "options": {"max_contracts_per_order": None},
    }
    risk = RiskEngine(parse_limits(limits), market_hours="always", book=book)
    engine = ExecutionEngine(
        ExecutionStore(redis),
        PaperBroker(redis, get, slippage_bps=0),
        risk,
        get,
        starting_cash=1e9,
        chains=OptionChains(feed, ttl=3600),
    )
    await engine.start()
    settle_heap()  # as the datahub and execution services do once started
    condor = {"shape": "iron_condor", "dte": 30, "delta": 0.2, "width": 10}
    await engine.handle_alert(  # warm the chain cache (the issue measures it cached)
        Alert.model_validate({"ticker": "SPY", "action": "sell", "quantity": 1, "option": condor})
    )
    # alternated, so both see the same book (it grows with every fill) and the same machine
    scenarios = (
        ("stock alert (baseline)", {"ticker": "AAPL", "action": "buy", "quantity": 1}),
        (
            "iron condor alert, chain cached",
            {"ticker": "SPY", "action": "sell", "quantity": 1, "option": condor},
        ),
    )
    decided: list[list[float]] = [[], []]  # until the webhook's answer
    placed: list[list[float]] = [[], []]  # until sent, filled and the fills stored
    for i in range(n):
        for k, (_name, body) in enumerate(scenarios):
            alert = Alert.model_validate({**body, "alert_id": f"{k}-{i}"})
            t0 = time.perf_counter()
            decision = await engine.handle_alert(alert)
            decided[k].append(time.perf_counter() - t0)
            assert decision.status == "accepted", decision.message
            while engine.tasks:  # fills booked before the next alert: each pays for its own
                await asyncio.sleep(0)
            placed[k].append(time.perf_counter() - t0)
    results = [
        summarize(f"{name}: {what}", runs[k], sum(runs[k]))
        for what, runs in (("decided", decided), ("decided and placed", placed))
        for k, (name, _) in enumerate(scenarios)
    ]
    await engine.close()
    return results


async def main(quick: bool) -> None:
    n = 200 if quick else 1000
    with tempfile.TemporaryDirectory() as tmp, redis_server(Path(tmp)) as server:
        redis = Redis.from_url(server.url)
        try:
            stock, condor, stock_placed, condor_placed = await run(redis, n)
        finally:
            await redis.aclose()
    print_table(
        [(stock, None), (condor, stock), (stock_placed, None), (condor_placed, stock_placed)],
        "option alerts on the paper broker (engine, Redis; alternated, same book)",
    )
    for base, row in ((stock, condor), (stock_placed, condor_placed)):
        print(f"{row.scenario}: p50 {row.p50_ms / base.p50_ms:.2f}x the stock alert's (goal: 2x)")
        record(
            row.scenario,
            row.p50_ms,
            row.p99_ms,
            row.throughput,
            unit="alerts/s",
            base=(base.p50_ms, base.p99_ms, base.throughput),
        )


if __name__ == "__main__":
    asyncio.run(main("--quick" in sys.argv))
