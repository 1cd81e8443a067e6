"""Datahub benchmarks against real processes: UDF history, quotes REST, WebSocket fan-out,
webhook to accepted paper order. Each beside a bare-FastAPI baseline measured in the same run.

    .venv/bin/python -m tests.bench.bench_datahub [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
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


def start_datahub(
    redis_url: str,
    tmp: Path,
    quote_rate: float,
    workers: int = 1,
    extra: dict[str, str] | None = None,
) -> Process:
    port = free_port()
    env = {**hub_env(redis_url, tmp, quote_rate), "TRADEROPS_HTTP_PORT": str(port), **(extra or {})}
    return Process([str(BIN / "trader-ops"), "datahub", "--workers", str(workers)], env, port)


def start_execution(redis_url: str, tmp: Path) -> Process:
    """``trader-ops execution``: the account engines in their own process (metrics port as
    its readiness port)."""
    port = free_port()
    env = hub_env(redis_url, tmp, 10)
    argv = [str(BIN / "trader-ops"), "execution", "--metrics-port", str(port)]
    return Process(argv, env, port)


def hub_env(redis_url: str, tmp: Path, quote_rate: float) -> dict[str, str]:
    risk = tmp / "risk.yaml"
    risk.write_text(RISK)
    return {
        "TRADEROPS_REDIS_URL": redis_url,
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


def alert_body(i: int, tag: str) -> bytes:
    return json.dumps(
        {
            "passphrase": PASS,
            "ticker": SYMBOLS[i % len(SYMBOLS)],
            "action": "buy" if (i // len(SYMBOLS)) % 2 == 0 else "sell",
            "quantity": 1,
            "alert_id": f"bench-{tag}-{i}",
        }
    ).encode()


class WebhookLoad:
    """Alerts to ``trader-ops datahub`` and the same bodies to the bare endpoint. An alert
    counts when its answer is an accepted paper order (a 202 ``queued`` counts only in the
    saturation runs: taken in durably, decided after the answer's wait)."""

    def __init__(self, session: aiohttp.ClientSession, base: str, baseline: str) -> None:
        self.session, self.base, self.baseline = session, base, baseline
        self.refusals: collections.Counter[tuple[int, str]] = collections.Counter()

    async def hit(self, i: int, tag: str, queued_ok: bool = False) -> bool:
        async with self.session.post(
            f"{self.base}/webhook/tradingview", data=alert_body(i, tag)
        ) as r:
            payload = await r.json()
            ok = r.status == 202 and (
                payload.get("status") == "accepted"
                or (queued_ok and payload.get("status") == "queued")
            )
            if not ok:
                key = (r.status, payload.get("status") or payload.get("error", "")[:60])
                self.refusals[key] += 1
            return ok

    async def hit_bare(self, i: int) -> bool:
        async with self.session.post(
            f"{self.baseline}/bare/webhook", data=alert_body(i, "bare")
        ) as r:
            await r.read()
            return r.status == 202

    async def open(self, label: str, rate: float, seconds: float, tag: str) -> Result:
        lat, el, err = await open_loop(lambda i: self.hit(i, tag), rate, seconds)
        return summarize(f"webhook -> accepted paper order @ {rate:.0f}/s, {label}", lat, el, err)

    async def open_bare(self, rate: float, seconds: float) -> Result:
        lat, el, err = await open_loop(self.hit_bare, rate, seconds)
        return summarize("baseline", lat, el, err)

    async def saturate(self, label: str, seconds: float, tag: str) -> Result:
        lat, el, err = await closed_loop(lambda i: self.hit(i, tag, queued_ok=True), 32, seconds)
        return summarize(f"webhook saturation, {label} (32 in flight)", lat, el, err)

    async def saturate_bare(self, seconds: float) -> Result:
        lat, el, err = await closed_loop(self.hit_bare, 32, seconds)
        return summarize("baseline", lat, el, err)


async def wait_ready(session: aiohttp.ClientSession, base: str) -> None:
    for _ in range(300):  # until an engine holds the account
        with contextlib.suppress(aiohttp.ClientError):
            async with session.get(f"{base}/ready") as r:
                if r.status == 200:
                    return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{base} never became ready")


async def bench_webhooks(
    redis_url: str, tmp: Path, bare: str, rate: float, seconds: float
) -> list[tuple[Result, Result | None]]:
    """Webhook -> accepted paper order, with 1 and with 2 intake workers (the account's
    engine in one of them), and 2 intake workers with the engine in ``trader-ops
    execution`` (compose's shape), each beside the bare endpoint in the same run. The datahub's
    simulated feed runs at 10 quotes/s per symbol here (100/s in all: quotes to fill at,
    not the WebSocket scenario's 1,000/s fan-out load)."""
    rows: list[tuple[Result, Result | None]] = []
    stamp = f"{time.time():.0f}"
    shapes = [(1, False), (2, False), (2, True)]  # (intake workers, engines in their own process)
    for workers, apart in shapes:
        label = f"{workers} worker" + ("s" if workers > 1 else "")
        engines = None
        if apart:  # the compose / playbook shape: intake only in the datahub
            label += " + execution service"
            engines = start_execution(redis_url, tmp)
        extra = {"TRADEROPS_EXECUTION_IN_DATAHUB": "false"} if apart else None
        hub = start_datahub(redis_url, tmp, quote_rate=10, workers=workers, extra=extra)
        try:
            async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=200, keepalive_timeout=2)
            ) as s:
                load = WebhookLoad(s, f"http://127.0.0.1:{hub.port}", bare)
                await wait_ready(s, load.base)
                await load.saturate(
                    label, 1, f"warm-{workers}-{stamp}"
                )  # connections, JIT-free warm-up
                opened = await load.open(label, rate, seconds, f"open-{workers}-{stamp}")
                rows.append((opened, await load.open_bare(rate, seconds)))
                sat = await load.saturate(label, min(seconds, 10), f"sat-{workers}-{stamp}")
                rows.append((sat, await load.saturate_bare(min(seconds, 10))))
                if load.refusals:
                    print(f"webhook refusals ({label}):", dict(load.refusals.most_common(5)))
        finally:
            hub.stop()
            if engines is not None:
                engines.stop()
    return rows


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


async def main(quick: bool, only: str | None) -> None:
    seconds = 5 if quick else 30
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        redis = RedisServer(tmp / "redis")
        redis.start()
        baseline = start_baseline()
        bare = f"http://127.0.0.1:{baseline.port}"
        rows: list[tuple[Result, Result | None]] = []
        try:
            if only in (None, "read"):
                hub = start_datahub(redis.url, tmp, quote_rate=100)  # 10 x 100/s = 1,000 quotes/s
                try:
                    base = f"http://127.0.0.1:{hub.port}"
                    # keep-alive shorter than uvicorn's 5 s: no request races a server-side close
                    async with aiohttp.ClientSession(
                        connector=aiohttp.TCPConnector(limit=200, keepalive_timeout=2)
                    ) as s:
                        await asyncio.sleep(1)
                        rows.append(await bench_history(s, base, bare, 400 if quick else 2000))
                        rows.append(await bench_quotes(s, base, bare, 500, min(seconds, 10)))
                        rows.append((await bench_ws(base, 200, 5 if quick else 10), None))
                finally:
                    hub.stop()
            if only in (None, "webhook"):
                rows += await bench_webhooks(redis.url, tmp, bare, 300, seconds)
        finally:
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
    for r, b in rows:
        if b is not None and "saturation" in r.scenario and b.throughput:
            print(f"{r.scenario}: {100 * r.throughput / b.throughput:.1f} % of the bare endpoint")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="short runs (5 s) for a smoke check")
    parser.add_argument(
        "--only", choices=["read", "webhook"], help="only the read paths, or only the webhook"
    )
    args = parser.parse_args()
    asyncio.run(main(args.quick, args.only))
