"""Webhook latency with the notifier's channel down, beside the same with it up (same run).

`trader-ops run` (the embedded stack: datahub, engine and notifier share one event loop)
posts notifications through apprise to a local json:// endpoint this script runs, and
takes webhooks at a fixed rate while the endpoint is up and while it refuses connections,
in turns (so a slow moment of the machine falls on both alike). The notifier retries
every <= 0.5 s while the channel is down. Afterwards every fill must have been notified
once the channel is back: the row's error count is the fills not notified.

    .venv/bin/python -m tests.bench.bench_notify [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from tests.bench.bench_datahub import WebhookLoad, hub_env, wait_ready
from tests.bench.common import BIN, Process, Result, open_loop, print_table, record, summarize
from tests.servers import RedisServer, free_port


class Channel:
    """The notification endpoint apprise's json:// posts to; can go down and come back."""

    def __init__(self) -> None:
        self.port = free_port()
        self.fills = 0
        self.runner: web.AppRunner | None = None

    async def _post(self, request: web.Request) -> web.Response:
        title = str((await request.json()).get("title", ""))
        match = re.match(r"(\d+) fills on", title)
        self.fills += int(match.group(1)) if match else int(title.startswith("Fill on"))
        return web.json_response({"ok": True})

    async def up(self) -> None:
        if self.runner is not None:
            return
        app = web.Application()
        app.router.add_post("/notify", self._post)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def down(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


def start_embedded(redis_url: str, tmp: Path, channel: Channel) -> Process:
    port = free_port()
    env = {
        **hub_env(redis_url, tmp, quote_rate=10),
        "TRADEROPS_KAIROS_JOBS": str(tmp / "no-jobs"),  # no scheduler: only our load
        "TRADEROPS_NOTIFY_URLS": f"json://127.0.0.1:{channel.port}/notify",
        "TRADEROPS_NOTIFY_COALESCE_SECONDS": "0.2",
        "TRADEROPS_NOTIFY_BACKOFF_MAX_SECONDS": "0.5",
        "TRADEROPS_NOTIFY_MAX_ATTEMPTS": "100000",
    }
    return Process([str(BIN / "trader-ops"), "run", "--port", str(port)], env, port)


async def bench(rate: float, seconds: float, turns: int = 3) -> tuple[Result, Result]:
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        redis = RedisServer(tmp / "redis")
        redis.start()
        channel = Channel()
        await channel.up()
        hub = start_embedded(redis.url, tmp, channel)
        lat: dict[str, list[float]] = {"up": [], "down": []}
        took = {"up": 0.0, "down": 0.0}
        errors = {"up": 0, "down": 0}
        lost = 0
        stamp = f"{time.time():.0f}"
        try:
            async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=200, keepalive_timeout=2)
            ) as s:
                base = f"http://127.0.0.1:{hub.port}"
                load = WebhookLoad(s, base, "")
                await wait_ready(s, base)
                await open_loop(lambda i: load.hit(i, f"warm-{stamp}"), rate, 1)
                await asyncio.sleep(1.0)  # the warm-up's fills are notified before we count
                channel.fills = 0
                accepted = 0
                for turn in range(turns):
                    for state in ("up", "down"):
                        await (channel.up() if state == "up" else channel.down())
                        tag = f"{state}-{turn}-{stamp}"
                        got, el, err = await open_loop(
                            lambda i, t=tag: load.hit(i, t), rate, seconds
                        )
                        lat[state] += got
                        took[state] += el
                        errors[state] += err
                        accepted += len(got)
                await channel.up()
                deadline = time.monotonic() + 60
                while channel.fills < accepted and time.monotonic() < deadline:
                    await asyncio.sleep(0.1)
                lost = accepted - channel.fills
                if lost:
                    print(f"{lost} of {accepted} fills not notified after the channel came back")
                if load.refusals:
                    print("webhook refusals:", dict(load.refusals.most_common(5)))
        finally:
            await channel.down()
            hub.stop()
            redis.stop()
    label = f"webhook @ {rate:.0f}/s, embedded notifier"
    down = summarize(f"{label}, channel down", lat["down"], took["down"], errors["down"] + lost)
    up = summarize("same, channel up", lat["up"], took["up"], errors["up"])
    return down, up


async def main(quick: bool) -> None:
    down, up = await bench(100, 3 if quick else 10)
    rows: list[tuple[Result, Result | None]] = [(down, up)]
    print_table(rows, "notifier channel down vs up (trader-ops run; latency from scheduled send)")
    record(
        down.scenario,
        down.p50_ms,
        down.p99_ms,
        down.throughput,
        base=(up.p50_ms, up.p99_ms, up.throughput),
    )


def _args() -> Any:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="short runs (3 s per turn)")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(_args().quick))
