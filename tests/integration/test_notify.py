"""The trade-notification worker against a real datahub, a real redis-server and apprise
posting to a local fake channel (apprise's ``json://`` to an aiohttp server here).

- a paper fill, a risk denial and a kill-switch change each arrive once;
- 200 denials within a second arrive as one coalesced message;
- with the channel down and webhooks coming in, no stall of the shared event loop is the
  notifier's (a watchdog samples the loop's stack), a failed attempt costs little CPU, and
  the notifications held meanwhile arrive once the channel is back (the webhook latency
  with the channel up and down is compared in ``make bench``);
- a message no attempt delivers is dead-lettered and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import re
import sys
import threading
import time
import traceback
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from app.bus import Keys
from app.datahub.app import create_app
from app.notify.messages import KINDS
from app.notify.worker import AppriseChannel, NotifyWorker
from tests.apps import serve, settings_for
from tests.servers import RedisServer, free_port

pytestmark = pytest.mark.integration

PASS = "notify-passphrase"
ADMIN = "notify-admin-key"
RISK_YAML = """
rate_limit:
  global: {max_orders: 100000, window_seconds: 60}
  per_symbol: {max_orders: 100000, window_seconds: 60}
duplicate: null
price_collar: null
sizing:
  default: {mode: signal, quantity: 1}
"""


class FakeChannel:
    """A local HTTP endpoint apprise's json:// posts to; can go down and come back."""

    def __init__(self) -> None:
        self.port = free_port()
        self.messages: list[dict[str, Any]] = []
        self.runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/notify"

    async def _post(self, request: web.Request) -> web.Response:
        self.messages.append(await request.json())
        return web.json_response({"ok": True})

    async def up(self) -> None:
        app = web.Application()
        app.router.add_post("/notify", self._post)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def down(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    def titled(self, pattern: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if re.search(pattern, m["title"])]


async def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


@pytest.fixture
async def hub(
    redis_srv: RedisServer, redis: Redis, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    risk = tmp_path / "risk.yaml"
    risk.write_text(RISK_YAML)
    settings = settings_for(
        redis_srv.url,
        symbols=["AAPL"],
        webhook_passphrase=PASS,
        admin_api_key=ADMIN,
        risk_config=risk,
        market_hours="always",
        # the load comes from one address: lift the per-source webhook limit
        webhook_rate_per_source=100_000,
        webhook_burst_per_source=100_000,
    )
    async with (
        serve(create_app(settings)) as url,
        httpx.AsyncClient(base_url=url, timeout=10, headers={"X-API-Key": ADMIN}) as client,
    ):
        yield client


@contextlib.asynccontextmanager
async def notifier(redis: Redis, channel: FakeChannel, **kw: Any) -> AsyncIterator[NotifyWorker]:
    opts: dict[str, Any] = {
        "kinds": KINDS,
        "coalesce_seconds": 0.5,
        "backoff_initial_seconds": 0.1,
        "backoff_max_seconds": 0.5,
        "max_attempts": 10_000,
    }
    worker = NotifyWorker(redis, AppriseChannel([channel.url], timeout_seconds=2), **(opts | kw))
    await worker.ensure_groups()
    task = asyncio.create_task(worker.run_forever())
    try:
        yield worker
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task  # (tests/unit/test_cancellation.py: a cancel mid-read stops it)


class Webhooks:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.n = 0

    async def post(self, **fields: Any) -> httpx.Response:
        self.n += 1
        body = {"passphrase": PASS, "ticker": "AAPL", "action": "buy", "quantity": 1}
        body |= {"alert_id": f"notify-{self.n}-{time.time_ns()}", **fields}
        return await self.client.post("/webhook/tradingview", content=json.dumps(body))

    async def kill_switch(self, state: str) -> None:
        r = await self.client.post("/api/v1/risk/kill-switch", json={"state": state})
        assert r.status_code == 200, r.text


async def test_fill_denial_and_kill_switch_each_arrive_once(
    hub: httpx.AsyncClient, redis: Redis
) -> None:
    channel = FakeChannel()
    await channel.up()
    hooks = Webhooks(hub)
    try:
        async with notifier(redis, channel):
            r = await hooks.post()
            assert r.status_code == 202, r.text
            await hooks.kill_switch("HALTED")
            denied = await hooks.post()
            assert denied.json()["status"] == "denied", denied.text
            await wait_until(
                lambda: all(
                    channel.titled(p) for p in ("^Fill on", "^Risk denial on", "^Kill switch on")
                ),
                15,
                "a fill, a denial and a kill-switch message",
            )
            await asyncio.sleep(1.5)  # a few coalescing windows: nothing is sent twice
    finally:
        await channel.down()
    assert len(channel.messages) == 3, channel.messages
    fill = channel.titled("^Fill on")[0]["message"]
    assert "BUY 1 AAPL @" in fill
    assert "kill_switch" in channel.titled("^Risk denial on")[0]["message"]
    assert "Kill switch HALTED on" in channel.titled("^Kill switch on")[0]["message"]


async def test_200_denials_in_a_second_are_one_message(
    hub: httpx.AsyncClient, redis: Redis
) -> None:
    channel = FakeChannel()
    await channel.up()
    hooks = Webhooks(hub)
    try:
        await hooks.kill_switch("HALTED")
        async with notifier(redis, channel, coalesce_seconds=6.0):
            start = time.monotonic()
            sem = asyncio.Semaphore(20)

            async def one() -> str:
                async with sem:
                    return str((await hooks.post()).json()["status"])

            statuses = await asyncio.gather(*(one() for _ in range(200)))
            took = time.monotonic() - start
            assert statuses.count("denied") == 200
            await wait_until(lambda: bool(channel.titled("risk denial")), 15, "the denials")
            await asyncio.sleep(6.5)
    finally:
        await channel.down()
    denials = channel.titled("(?i)risk denial")
    assert took < 6.0, f"200 webhooks took {took:.2f} s: longer than one coalescing window"
    assert len(denials) == 1, [m["title"] for m in denials]
    assert denials[0]["title"] == "200 risk denials on default"
    assert "kill_switch x200" in denials[0]["message"]
    assert "... and 190 more" in denials[0]["message"]


async def _load(hooks: Webhooks, n: int, concurrency: int = 4) -> None:
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            r = await hooks.post(action="buy" if i % 2 else "sell")
            assert r.status_code == 202, r.text

    await asyncio.gather(*(one(i) for i in range(n)))


def fills_notified(channel: FakeChannel) -> int:
    total = 0
    for m in channel.titled("(?i)fill"):
        match = re.match(r"(\d+) fills on", m["title"])
        total += int(match.group(1)) if match else 1
    return total


class LoopWatch:
    """Which code holds the event loop: a watchdog thread samples the loop thread's stack
    whenever a probe task on the loop has not run for ``stall`` seconds.

    A p99 comparison of webhook latencies cannot tell a notifier that blocks from a loaded
    machine or a full garbage collection (100-170 ms for this test process's heap, landing
    in whichever sample it likes). A stack names the culprit: the loop is only charged to
    the notifier when it was caught inside the notifier's own frames. Automatic garbage
    collection is off while watching, so a collection cannot be charged to whatever code
    happened to allocate when it started.
    """

    def __init__(self, stall: float = 0.05) -> None:
        self.stall = stall
        self.stalls: list[str] = []
        self.ticked = time.monotonic()
        self.loop_thread = threading.get_ident()
        self.stop = threading.Event()
        self.watchdog = threading.Thread(target=self._watch, name="loop-watch", daemon=True)

    async def _probe(self) -> None:
        while True:
            self.ticked = time.monotonic()
            await asyncio.sleep(0.005)

    def _watch(self) -> None:
        sampled = None
        while not self.stop.wait(0.005):
            ticked = self.ticked
            if ticked != sampled and time.monotonic() - ticked > self.stall:
                sampled = ticked  # one sample per stall
                frame = sys._current_frames().get(self.loop_thread)
                if frame is not None:
                    self.stalls.append("".join(traceback.format_stack(frame)))

    def held_by(self, *paths: str) -> list[str]:
        """The sampled stalls whose stack passes through any of ``paths``."""
        return [s for s in self.stalls if any(p in s for p in paths)]

    @contextlib.asynccontextmanager
    async def watching(self) -> AsyncIterator[LoopWatch]:
        gc.collect()
        gc.disable()
        probe = asyncio.create_task(self._probe())
        await asyncio.sleep(0)
        self.watchdog.start()
        try:
            yield self
        finally:
            self.stop.set()
            self.watchdog.join()
            probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probe
            gc.enable()


class Attempts:
    """Counts the channel's failed attempts (and the CPU each took in its thread) by
    wrapping the worker's apprise object: the attempts stay apprise's real ones."""

    def __init__(self, worker: NotifyWorker) -> None:
        channel: Any = worker.channel
        apobj = channel.apobj
        self.notify = apobj.notify
        self.failed = 0
        self.cpu: list[float] = []
        apobj.notify = self._notify

    def _notify(self, *args: Any, **kw: Any) -> Any:
        cpu = time.thread_time()
        try:
            ok = self.notify(*args, **kw)
        finally:
            self.cpu.append(time.thread_time() - cpu)
        self.failed += not ok
        return ok


async def test_a_dead_channel_never_holds_the_event_loop_and_loses_nothing(
    hub: httpx.AsyncClient, redis: Redis
) -> None:
    """While the channel refuses connections, webhooks keep coming into the notifier's
    event loop (the embedded stack shares one) and the notifier retries: no stall of that
    loop is the notifier's, and the fills held meanwhile are each delivered once when the
    channel is back."""
    channel = FakeChannel()
    hooks = Webhooks(hub)
    await _load(hooks, 20)  # warm-up, before the notifier's group exists: not notified
    await asyncio.sleep(1.0)  # its fills are booked before the group starts at the end
    posted = 0
    try:
        async with notifier(redis, channel, coalesce_seconds=0.2) as worker:
            attempts = Attempts(worker)
            async with LoopWatch().watching() as watch:
                # down until the notifier has failed a few times, with webhooks all along
                while attempts.failed < 5:
                    await _load(hooks, 20)
                    posted += 20
                pending: Any = await redis.xpending(Keys.FILLS_STREAM, Keys.NOTIFY_GROUP)
                assert pending["pending"] > 0  # held, not acknowledged, while down
            await channel.up()
            await wait_until(
                lambda: fills_notified(channel) >= posted, 60, "held fills after channel is back"
            )
    finally:
        await channel.down()
    assert fills_notified(channel) == posted  # each fill once
    held = watch.held_by("app/notify/", "/apprise/")
    assert not held, f"{len(held)} loop stalls in the notifier; the first:\n{held[0][-2500:]}"
    print(  # for the record: apprise's CPU per attempt, in its thread (not an assertion)
        f"{attempts.failed} failed attempts, CPU per attempt max {max(attempts.cpu) * 1000:.1f}"
        f" ms; {len(watch.stalls)} loop stalls over {watch.stall * 1000:.0f} ms, none the notifier's"
    )


async def test_undeliverable_message_is_dead_lettered_and_counted(
    hub: httpx.AsyncClient, redis: Redis
) -> None:
    channel = FakeChannel()  # never up
    hooks = Webhooks(hub)

    def dead() -> float:
        return (
            REGISTRY.get_sample_value(
                "traderops_notify_dead_letters_total", {"kind": "kill_switch"}
            )
            or 0.0
        )

    before = dead()
    async with notifier(redis, channel, max_attempts=2, coalesce_seconds=0.1):
        await hooks.kill_switch("REDUCING")
        for _ in range(200):
            if await redis.xlen(Keys.NOTIFY_DEAD_LETTERS):
                break
            await asyncio.sleep(0.05)
    entries: Any = await redis.xrange(Keys.NOTIFY_DEAD_LETTERS)
    assert len(entries) == 1 and entries[0][1][b"kind"] == b"kill_switch"
    assert dead() == before + 1
    pending: Any = await redis.xpending(Keys.NOTIFY_OUTBOX, Keys.NOTIFY_GROUP)
    assert pending["pending"] == 0
    await hooks.kill_switch("ACTIVE")
