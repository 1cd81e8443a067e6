"""Datahub benchmarks against real processes: UDF history, quotes REST, WebSocket fan-out,
webhook to accepted paper order. Each beside a bare-FastAPI baseline measured in the same run.

    .venv/bin/python -m tests.bench.bench_datahub [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson
import websockets

from tests.bench.common import (
    BIN,
    Process,
    Result,
    closed_loop,
    open_loop,
    print_table,
    record,
    start_baseline,
    summarize,
)
from tests.servers import RedisServer, free_port

SYMBOLS = ["AAPL", "MSFT", "GOOGL", "NVDA", "AMD", "TSLA", "SPY", "QQQ", "IWM", "DIA"]
PASS = "bench-passphrase"
RISK = """
rate_limit: null
duplicate: null
price_collar: null
volatility: null
concentration: {max_pct: 100}
sector_concentration: null
max_open_positions: {max_positions: 100}
daily_loss: {max_loss: 1000000}
circuit_breaker: null  # the bench buys at the ask and sells at the bid: a steady "loss"
"""


def start_datahub(redis_url: str, tmp: Path, quote_rate: float, workers: int = 1) -> Process:
    port = free_port()
    risk = tmp / "risk.yaml"
    risk.write_text(RISK)
    env = {
        "TRADEROPS_REDIS_URL": redis_url,
        "TRADEROPS_HTTP_PORT": str(port),
        "TRADEROPS_SYMBOLS": ",".join(SYMBOLS),
        "TRADEROPS_SIM_QUOTE_RATE": str(quote_rate),
        "TRADEROPS_WEBHOOK_PASSPHRASE": PASS,
        "TRADEROPS_ADMIN_API_KEY": "bench-admin",
        "TRADEROPS_RISK_CONFIG": str(risk),
        "TRADEROPS_WEBHOOK_RATE_PER_SOURCE": "1000000",  # one load generator, one source address
        "TRADEROPS_WEBHOOK_BURST_PER_SOURCE": "1000000",
        "TRADEROPS_LOG_LEVEL": "WARNING",
        "TRADEROPS_DATA_DIR": str(tmp),
    }
    return Process([str(BIN / "trader-ops"), "datahub", "--workers", str(workers)], env, port)


async def bench_history(
    session: aiohttp.ClientSession, base: str, baseline: str, n: int
) -> tuple[Result, Result]:
    now = int(time.time())
    end = now - now % 86_400  # a closed range: the cacheable case TradingView scrolls through
    url = f"{base}/udf/history?symbol=AAPL&resolution=1D&to={end}&countback=5000"
    async with session.get(url) as r:  # warm the cache
        body = await r.json()
        assert len(body["t"]) == 5000, body.get("errmsg")

    async def hit(_: int, target: str = url) -> bool:
        async with session.get(target) as r:
            await r.read()
            return r.status == 200

    lat, el, err = await closed_loop(hit, 1, n / 400)
    res = summarize("udf/history 5000 bars (warm)", lat, el, err)

    async def hit_base(_: int) -> bool:
        return await hit(_, f"{baseline}/bare/history")

    lat, el, err = await closed_loop(hit_base, 1, n / 400)
    return res, summarize("baseline", lat, el, err)


async def bench_quotes(
    session: aiohttp.ClientSession, base: str, baseline: str, rate: float, seconds: float
) -> tuple[Result, Result]:
    url = f"{base}/api/v1/quotes?symbols={','.join(SYMBOLS)}"

    async def hit(_: int, target: str = url) -> bool:
        async with session.get(target) as r:
            await r.read()
            return r.status == 200

    lat, el, err = await open_loop(hit, rate, seconds)
    res = summarize(f"api/v1/quotes 10 symbols @ {rate:.0f}/s", lat, el, err)

    async def hit_base(_: int) -> bool:
        return await hit(_, f"{baseline}/bare/quotes")

    lat, el, err = await open_loop(hit_base, rate, seconds)
    return res, summarize("baseline", lat, el, err)


async def bench_webhook(
    session: aiohttp.ClientSession, base: str, baseline: str, rate: float, seconds: float, tag: str
) -> list[tuple[Result, Result | None]]:
    accepted = 0
    refusals: collections.Counter[tuple[int, str]] = collections.Counter()

    def body(i: int) -> bytes:
        return json.dumps(
            {
                "passphrase": PASS,
                "ticker": SYMBOLS[i % len(SYMBOLS)],
                "action": "buy" if (i // len(SYMBOLS)) % 2 == 0 else "sell",
                "quantity": 1,
                "alert_id": f"bench-{tag}-{i}",
            }
        ).encode()

    async def hit(i: int, target: str = f"{base}/webhook/tradingview") -> bool:
        nonlocal accepted
        async with session.post(target, data=body(i)) as r:
            payload = await r.json()
            ok = r.status == 202 and payload.get("status") == "accepted"
            accepted += ok
            if not ok:
                refusals[(r.status, payload.get("check") or payload.get("error", "")[:60])] += 1
            return ok

    lat, el, err = await open_loop(hit, rate, seconds)
    open_res = summarize(f"webhook -> accepted paper order @ {rate:.0f}/s", lat, el, err)

    async def hit_base(i: int) -> bool:
        async with session.post(f"{baseline}/bare/webhook", data=body(i)) as r:
            await r.read()
            return r.status == 202

    lat, el, err = await open_loop(hit_base, rate, seconds)
    open_base = summarize("baseline", lat, el, err)
    lat, el, err = await closed_loop(lambda i: hit(i + 10_000_000), 32, min(seconds, 10))
    sat = summarize("webhook saturation, 1 worker (32 in flight)", lat, el, err)
    lat, el, err = await closed_loop(hit_base, 32, min(seconds, 10))
    sat_base = summarize("baseline", lat, el, err)
    if refusals:
        print("webhook refusals:", dict(refusals.most_common(5)))
    return [(open_res, open_base), (sat, sat_base)]


async def bench_webhook_saturation(
    session: aiohttp.ClientSession, base: str, seconds: float, tag: str
) -> Result:
    """Closed loop, 32 in flight, against ``trader-ops datahub --workers 2``."""

    async def hit(i: int) -> bool:
        body = {
            "passphrase": PASS,
            "ticker": SYMBOLS[i % len(SYMBOLS)],
            "action": "buy" if (i // len(SYMBOLS)) % 2 == 0 else "sell",
            "quantity": 1,
            "alert_id": f"bench-{tag}-{i}",
        }
        async with session.post(f"{base}/webhook/tradingview", data=json.dumps(body)) as r:
            payload = await r.json()
            return r.status == 202 and payload.get("status") in ("accepted", "queued")

    lat, el, err = await closed_loop(hit, 32, min(seconds, 10))
    return summarize("webhook saturation, 2 workers (32 in flight)", lat, el, err)


async def bench_ws(base: str, clients: int, seconds: float, observers: int = 20) -> Result:
    """Feed-to-client latency: quote time stamp (feed) to receipt. All ``clients`` receive
    every frame; ``observers`` of them decode each frame and time every quote in it, the
    rest only count frames (the load generator shares the machine's two cores)."""
    url = base.replace("http://", "ws://") + "/stream"
    latencies: list[float] = []
    frames = [0] * clients

    async def client(i: int) -> None:
        async with websockets.connect(url, max_queue=None) as ws:
            await ws.send(json.dumps({"op": "subscribe", "symbols": SYMBOLS}))
            deadline = time.time() + seconds
            while time.time() < deadline:
                try:
                    raw = await asyncio.wait_for(ws.recv(), 2)
                except TimeoutError:
                    continue
                frames[i] += 1
                if i < observers:
                    now = time.time()
                    msg = orjson.loads(raw)
                    if msg["type"] == "quotes":
                        latencies.extend(now - q["time"] for q in msg["data"])

    start = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    res = summarize(
        f"ws fan-out {clients} clients x 10 symbols", latencies, time.perf_counter() - start
    )
    res.scenario += f" (min frames/client {min(frames)})"
    return res


async def main(quick: bool) -> None:
    seconds = 5 if quick else 30
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        redis = RedisServer(tmp / "redis")
        redis.start()
        hub = start_datahub(redis.url, tmp, quote_rate=100)  # 10 symbols x 100/s = 1,000 quotes/s
        baseline = start_baseline()
        rows: list[tuple[Result, Result | None]] = []
        try:
            base, bare = f"http://127.0.0.1:{hub.port}", f"http://127.0.0.1:{baseline.port}"
            # keep-alive shorter than uvicorn's 5 s, so no request races a server-side close
            async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=200, keepalive_timeout=2)
            ) as s:
                await asyncio.sleep(1)
                rows.append(await bench_history(s, base, bare, 400 if quick else 2000))
                rows.append(await bench_quotes(s, base, bare, 500, min(seconds, 10)))
                rows.append((await bench_ws(base, 200, 5 if quick else 10), None))
                rows += await bench_webhook(s, base, bare, 300, seconds, tag=str(int(time.time())))
                bare_sat = rows[-1][1]
            hub.stop()
            # intake in two worker processes (one of them also runs the account's engine)
            hub = start_datahub(redis.url, tmp, quote_rate=100, workers=2)
            async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=200, keepalive_timeout=2)
            ) as s:
                base = f"http://127.0.0.1:{hub.port}"
                for _ in range(200):  # until an engine holds the account
                    async with s.get(f"{base}/ready") as r:
                        if r.status == 200:
                            break
                    await asyncio.sleep(0.1)
                two = await bench_webhook_saturation(s, base, seconds, tag=f"w2-{time.time():.0f}")
                rows.append((two, bare_sat))
        finally:
            hub.stop()
            baseline.stop()
            redis.stop()
    print_table(rows, "datahub (real processes on loopback; latency from scheduled send)")
    for r, b in rows:
        record(
            r.scenario,
            r.p50_ms,
            r.p99_ms,
            r.throughput,
            base=(b.p50_ms, b.p99_ms, b.throughput) if b else None,
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="short runs (5 s) for a smoke check")
    asyncio.run(main(parser.parse_args().quick))
