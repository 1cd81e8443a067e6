"""The journal against a real parse-server 7 on PostgreSQL/PostGIS and a real Redis:
what TradeNote's UI sees, idempotency, outages, bad credentials, kills, restarts."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from aiohttp import web
from redis.asyncio import Redis

from app.bus import Keys, create_redis
from app.embedded import stop_process
from app.journal.analytics import analytics, calendar
from app.journal.cli import replay_range
from app.journal.client import TradeNoteClient
from app.journal.sync import Journal, JournalConfig
from app.journal.tradenote import day_unix
from app.journal.worker import JournalWorker, backlog
from app.models.orders import Fill, Intent
from app.observability import metrics
from app.retry import RetryPolicy
from tests.journal_servers import ParseServer, tradenote_srv, tradenote_user
from tests.servers import free_port, wait_for_port
from tests.support.metrics import sample

__all__ = ["tradenote_srv", "tradenote_user"]  # fixtures

pytestmark = pytest.mark.integration
NY = ZoneInfo("America/New_York")
ROOT = Path(__file__).resolve().parents[2]


def waits(initial: float, cap: float) -> RetryPolicy:
    """The worker's never-ending backoff, shrunk so an outage test takes milliseconds."""
    return RetryPolicy(attempts=None, total_timeout=None, wait_initial=initial, wait_max=cap,
                       wait_jitter=initial)  # fmt: skip


def at(day: date, hh: int, mm: int, ss: int = 0) -> float:
    return datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=NY).timestamp()


def mkfill(n: int, intent: Intent, qty: int, price: float, t: float, *, symbol: str = "AAPL",
           broker: str = "paper", commission: float = 0.0) -> Fill:  # fmt: skip
    account = "paper" if broker == "paper" else "live"  # each trading account: a TradeNote one
    return Fill(id=f"fill-{n}", order_id=f"ord-{n}", broker=broker, account=account, symbol=symbol,
                intent=intent, quantity=qty, price=price, commission=commission, time=t,
                strategy="momo")  # fmt: skip


async def push(redis: Redis, fills: list[Fill]) -> None:
    pipe = redis.pipeline(transaction=False)
    for f in fills:
        pipe.xadd(Keys.FILLS_STREAM, {"fill": f.model_dump_json()})
    await pipe.execute()


def journal_for(
    redis: Redis, url: str, app_id: str, key: str, username: str, owner: str = "test"
) -> Journal:
    client = TradeNoteClient(url, app_id, key, timeout=5)
    return Journal(client, redis, JournalConfig(username=username, tz=NY), owner=owner)


async def drain(worker: JournalWorker, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await worker.step()
        if (await backlog(worker.redis))["backlog"] == 0:
            return
    raise AssertionError(f"backlog not drained: {await backlog(worker.redis)}")


def all_executions(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for d in docs for e in d["executions"]]


@pytest.fixture
async def journal(
    redis: Redis, tradenote_srv: ParseServer, tradenote_user: dict[str, Any]
) -> AsyncIterator[Journal]:
    j = journal_for(redis, tradenote_srv.base_url, tradenote_srv.app_id, tradenote_srv.master_key,
                    tradenote_user["username"])  # fmt: skip
    yield j
    await j.client.close()


# -- what the UI sees ------------------------------------------------------------------------
async def test_ui_sees_day_documents(
    redis: Redis, journal: Journal, tradenote_srv: ParseServer, tradenote_user: dict[str, Any]
) -> None:
    d1, d2 = date(2025, 3, 12), date(2025, 3, 13)
    fills = [
        mkfill(1, Intent.BUY, 100, 10.0, at(d1, 9, 30), commission=1.0),
        mkfill(2, Intent.BUY, 100, 11.0, at(d1, 9, 45), commission=1.0),
        mkfill(3, Intent.SELL, 150, 12.0, at(d1, 10, 0), commission=1.0),
        mkfill(4, Intent.SELL, 50, 9.0, at(d1, 10, 30), commission=1.0),
        mkfill(5, Intent.SELL_SHORT, 20, 50.0, at(d1, 11, 0), symbol="TSLA", broker="tradier"),
        mkfill(6, Intent.BUY_TO_COVER, 20, 48.0, at(d1, 11, 5), symbol="TSLA", broker="tradier"),
        mkfill(7, Intent.BUY, 10, 100.0, at(d1, 15, 50), symbol="MSFT"),  # swing
        mkfill(8, Intent.SELL, 10, 103.0, at(d2, 9, 35), symbol="MSFT"),
    ]
    await push(redis, fills[:4])
    worker = JournalWorker(redis, journal, consumer="t1", block_ms=50)
    await worker.ensure_group()
    await drain(worker)  # intraday: the first fills are visible before the day is over
    await push(redis, fills[4:])
    await drain(worker)

    session = tradenote_srv.login(tradenote_user["username"], tradenote_user["password"])
    td1, td2 = day_unix(d1, NY), day_unix(d2, NY)
    docs = tradenote_srv.ui_trades(session, td1, td2)
    assert [d["dateUnix"] for d in docs] == [td1, td2]
    doc1, doc2 = docs
    uid = tradenote_user["objectId"]
    assert doc1["user"] == {"__type": "Pointer", "className": "_User", "objectId": uid}
    assert doc1["ACL"] == {uid: {"read": True, "write": True}}
    assert doc1["date"] == {"__type": "Date", "iso": "2025-03-12T00:00:00.000Z"}
    # MSFT was open at the end of day 1 and closed on day 2: like TradeNote's importer,
    # day 1 then marks it closed
    assert doc1["openPositions"] is False and doc2["openPositions"] is False
    assert len(doc1["executions"]) == 7 and len(doc2["executions"]) == 1

    e = doc1["executions"][0]
    for key in ("id", "account", "broker", "td", "sd", "currency", "type", "side", "strategy",
                "symbol", "symbolOriginal", "quantity", "price", "execTime", "commission", "sec",
                "taf", "nscc", "nasdaq", "ecnRemove", "ecnAdd", "grossProceeds", "netProceeds",
                "note", "trade"):  # fmt: skip
        assert key in e, key
    assert e["id"] == f"e{int(at(d1, 9, 30))}_AAPL_stock_B_1"
    assert (e["account"], e["side"], e["td"]) == ("paper", "B", td1)

    trades = {t["symbol"]: t for t in doc1["trades"]}
    aapl, tsla, msft = trades["AAPL"], trades["TSLA"], trades["MSFT"]
    assert aapl["grossProceeds"] == 150.0 and aapl["netProceeds"] == 146.0
    assert (aapl["grossStatus"], aapl["openPosition"], aapl["executionsCount"]) == ("win", False, 4)
    assert (tsla["account"], tsla["strategy"], tsla["side"]) == ("live", "short", "SS")
    assert tsla["grossProceeds"] == 40.0
    assert msft["openPosition"] is False and msft["grossProceeds"] == 0
    assert msft["exitTime"] == int(at(d2, 9, 35)) and msft["tradesCount"] == 0
    for key in ("id", "account", "broker", "type", "side", "strategy", "symbol", "buyQuantity",
                "sellQuantity", "entryTime", "exitTime", "entryPrice", "exitPrice", "commission",
                "grossEntryProceeds", "grossExitProceeds", "grossProceeds", "grossWins",
                "grossLoss", "grossSharePL", "grossStatus", "netProceeds", "netWins", "netLoss",
                "netStatus", "executionsCount", "tradesCount", "grossWinsCount",
                "grossLossCount", "executions", "openPosition", "note"):  # fmt: skip
        assert key in aapl, key
    assert doc1["blotter"]["AAPL"]["grossProceeds"] == 150.0
    assert doc1["pAndL"]["grossProceeds"] == 190.0 and doc1["pAndL"]["trades"] == 2
    assert doc1["pAndL"]["commission"] == 4.0
    # the swing trade closes on day 2 under the same id; day 1 marks it closed
    msft2 = doc2["trades"][0]
    assert msft2["id"] == msft["id"] and msft2["grossProceeds"] == 30.0
    assert msft2["openPosition"] is False and doc2["pAndL"]["grossProceeds"] == 30.0
    # the accounts the UI's filter lists
    me = tradenote_srv.call("GET", "users/me", session=session, master=False)
    assert {"value": "paper", "label": "paper"} in me["accounts"]
    assert {"value": "live", "label": "live"} in me["accounts"]
    # another user sees nothing (ACL)
    other = tradenote_srv.signup(f"other-{uid}", "pw")
    assert tradenote_srv.ui_trades(other["sessionToken"], td1, td2) == []

    # replay is idempotent: same documents, no duplicate executions
    n = await replay_range(journal, redis, d1, d2)
    assert n == 8
    again = tradenote_srv.ui_trades(session, td1, td2)
    assert [len(d["executions"]) for d in again] == [7, 1]
    assert [d["trades"] for d in again] == [
        d["trades"] for d in tradenote_srv.ui_trades(session, td1, td2)
    ]
    assert again[0]["pAndL"] == doc1["pAndL"] and again[1]["pAndL"] == doc2["pAndL"]

    # analytics from our own ledger, cached until the next fill
    a = await analytics(redis)
    assert a["total"]["trades"] == 3 and a["total"]["total_pnl"] == 216.0
    assert a["paper"]["total_pnl"] == 176.0 and a["live"]["total_pnl"] == 40.0
    assert a["cached"] is False and (await analytics(redis))["cached"] is True
    cal = await calendar(redis, 1, today=d2)
    assert {x["date"]: x["pnl"] for x in cal["days"] if x["fills"]} == {
        "2025-03-12": 186.0, "2025-03-13": 30.0,
    }  # fmt: skip
    await push(redis, [mkfill(9, Intent.BUY, 1, 10.0, at(d2, 12, 0))])
    assert (await analytics(redis))["cached"] is False


# -- outages and bad answers -----------------------------------------------------------------
class FaultProxy:
    """A pass-through in front of parse-server that can answer 503 or garbage on demand."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.mode = "pass"
        self.port = free_port()
        self.runner: web.AppRunner | None = None
        self.session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self.mode == "503":
            return web.Response(status=503, text="<html>Service Unavailable</html>")
        if self.mode == "garbage":
            return web.Response(status=200, text="<html>not json</html>", content_type="text/html")
        assert self.session is not None
        body = await request.read()
        headers = {
            k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")
        }
        async with self.session.request(
            request.method, self.target + request.path_qs, data=body, headers=headers
        ) as resp:
            return web.Response(status=resp.status, body=await resp.read(),
                                content_type=resp.content_type)  # fmt: skip

    async def start(self) -> None:
        self.session = aiohttp.ClientSession()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
        if self.session is not None:
            await self.session.close()


def counter(reason: str) -> float:
    return sample(metrics.JOURNAL_ERRORS, reason=reason)


async def count_in_tradenote(parse: ParseServer, user: dict[str, Any]) -> list[str]:
    session = parse.login(user["username"], user["password"])
    docs = parse.ui_trades(session, 0, 2**40)
    return [e["fillId"] for e in all_executions(docs)]


async def test_outage_1000_fills_each_lands_once(
    redis: Redis, tradenote_srv: ParseServer, tradenote_user: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    proxy = FaultProxy(tradenote_srv.base_url)
    await proxy.start()
    journal = journal_for(redis, proxy.url, tradenote_srv.app_id, tradenote_srv.master_key,
                          tradenote_user["username"])  # fmt: skip
    worker = JournalWorker(redis, journal, consumer="outage", block_ms=50, batch_size=200,
                           retry=waits(0.05, 0.3))  # fmt: skip
    await worker.ensure_group()
    task = asyncio.create_task(worker.run_forever())
    try:
        proxy.mode = "503"
        before = counter("unavailable")
        day = date(2025, 4, 1)
        symbols = ["AAPL", "MSFT", "NVDA", "AMD", "SPY"]
        fills = []
        for i in range(1000):
            intent = Intent.BUY if (i // 5) % 2 == 0 else Intent.SELL
            fills.append(
                mkfill(i, intent, 10, 100 + i % 7, at(day, 9, 30) + i, symbol=symbols[i % 5])
            )
        for i in range(0, 1000, 100):
            await push(redis, fills[i : i + 100])
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.8)
        assert counter("unavailable") > before
        status = await backlog(redis)
        assert status["backlog"] == 1000 and status["dead_letters"] == 0
        assert not worker.healthy
        assert any("HTTP 503" in r.getMessage() for r in caplog.records)

        proxy.mode = "garbage"
        before = counter("bad_response")
        await asyncio.sleep(0.8)
        assert counter("bad_response") > before
        assert (await backlog(redis))["backlog"] == 1000

        # parse-server itself down (connection refused), then back
        proxy.mode = "pass"
        tradenote_srv.stop()
        await asyncio.sleep(0.8)
        assert (await backlog(redis))["backlog"] == 1000
        tradenote_srv.start()
        deadline = time.monotonic() + 60
        while (await backlog(redis))["backlog"] and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert (await backlog(redis))["backlog"] == 0
    finally:
        worker.stop()
        await task
        await journal.client.close()
        await proxy.stop()
    ids = await count_in_tradenote(tradenote_srv, tradenote_user)
    assert len(ids) == 1000 and len(set(ids)) == 1000
    assert (await backlog(redis))["dead_letters"] == 0


async def test_wrong_key_and_unknown_user_wait(
    redis: Redis, tradenote_srv: ParseServer, tradenote_user: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    await push(redis, [mkfill(1, Intent.BUY, 5, 10.0, at(date(2025, 5, 2), 10, 0))])
    caplog.set_level(logging.ERROR, logger="app.journal")
    for key, username, reason, text in (
        ("wrong-key", tradenote_user["username"], "auth", "refused the credentials"),
        (tradenote_srv.master_key, "nobody-here", "unknown_user", "has no user 'nobody-here'"),
    ):
        journal = journal_for(redis, tradenote_srv.base_url, tradenote_srv.app_id, key, username)
        worker = JournalWorker(redis, journal, consumer="bad", block_ms=50,
                               retry=waits(0.01, 0.02))  # fmt: skip
        await worker.ensure_group()
        before = counter(reason)
        task = asyncio.create_task(worker.run_forever())
        await asyncio.sleep(0.3)
        worker.stop()
        await task
        await journal.client.close()
        assert counter(reason) > before
        assert any(text in r.getMessage() for r in caplog.records), text
        assert (await backlog(redis))["backlog"] == 1
        raw = await redis.hget(Keys.JOURNAL_STATUS, "last_error")
        assert raw is not None and text in raw.decode()
        assert "wrong-key" not in raw.decode() and tradenote_srv.master_key not in raw.decode()
    # fixed configuration: the waiting fill lands
    journal = journal_for(redis, tradenote_srv.base_url, tradenote_srv.app_id,
                          tradenote_srv.master_key, tradenote_user["username"])  # fmt: skip
    worker = JournalWorker(redis, journal, consumer="bad", block_ms=50)
    await drain(worker)
    await journal.client.close()
    assert await count_in_tradenote(tradenote_srv, tradenote_user) == ["fill-1"]


async def test_poison_entry_goes_to_dead_letters(redis: Redis, journal: Journal) -> None:
    await redis.xadd(Keys.FILLS_STREAM, {"fill": b"{not json"})
    await push(redis, [mkfill(1, Intent.BUY, 5, 10.0, at(date(2025, 5, 3), 10, 0))])
    worker = JournalWorker(redis, journal, consumer="p", block_ms=50)
    await worker.ensure_group()
    await drain(worker)
    status = await backlog(redis)
    assert status["dead_letters"] == 1 and status["backlog"] == 0
    dead: Any = await redis.xrange(Keys.JOURNAL_DEAD_LETTERS)
    assert b"undecodable" in dead[0][1][b"reason"] and dead[0][1][b"fill"] == b"{not json"


async def test_resumes_after_redis_restart(
    tmp_path: Path, tradenote_srv: ParseServer, tradenote_user: dict[str, Any]
) -> None:
    from tests.servers import RedisServer

    server = RedisServer(tmp_path / "redis")
    server.start()
    redis = create_redis(server.url)  # retries on a dropped connection, as services do
    journal = journal_for(redis, tradenote_srv.base_url, tradenote_srv.app_id,
                          tradenote_srv.master_key, tradenote_user["username"])  # fmt: skip
    worker = JournalWorker(redis, journal, consumer="r", block_ms=50,
                           retry=waits(0.05, 0.2))  # fmt: skip
    await worker.ensure_group()
    task = asyncio.create_task(worker.run_forever())
    try:
        day = date(2025, 5, 5)
        await push(redis, [mkfill(i, Intent.BUY, 1, 10.0, at(day, 10, 0) + i) for i in range(50)])
        await asyncio.sleep(0.5)
        server.restart()  # AOF: the stream and the group survive
        for _ in range(20):  # the test's own first write may hit the dropped connection
            try:
                await push(
                    redis,
                    [mkfill(i, Intent.SELL, 1, 11.0, at(day, 11, 0) + i) for i in range(50, 100)],
                )
                break
            except Exception:
                await asyncio.sleep(0.1)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if (await backlog(redis))["backlog"] == 0:
                    break
            except Exception:
                pass
            await asyncio.sleep(0.1)
    finally:
        worker.stop()
        await task
        await journal.client.close()
        await redis.aclose()
        server.stop()
    ids = await count_in_tradenote(tradenote_srv, tradenote_user)
    assert sorted(ids) == sorted(f"fill-{i}" for i in range(100))


async def test_killed_mid_batch_no_loss_no_duplicate(
    redis: Redis, redis_srv: Any, tradenote_srv: ParseServer, tradenote_user: dict[str, Any],
    tmp_path: Path,
) -> None:  # fmt: skip
    """The real `trader-ops journal` process, SIGKILLed while working through batches."""
    day = date(2025, 6, 2)
    symbols = [f"S{i}" for i in range(10)]
    fills = [
        mkfill(i, Intent.BUY if (i // 10) % 2 == 0 else Intent.SELL, 1, 10.0 + i % 3,
               at(day, 9, 30) + i, symbol=symbols[i % 10])
        for i in range(3000)
    ]  # fmt: skip
    await push(redis, fills)
    port = free_port()
    env = {
        **os.environ,
        "TRADEROPS_REDIS_URL": redis_srv.url,
        "TRADEROPS_TRADENOTE_URL": tradenote_srv.base_url,
        "TRADEROPS_TRADENOTE_APP_ID": tradenote_srv.app_id,
        "TRADEROPS_TRADENOTE_MASTER_KEY": tradenote_srv.master_key,
        "TRADEROPS_TRADENOTE_USERNAME": tradenote_user["username"],
        "TRADEROPS_JOURNAL_BATCH_SIZE": "100",
        "TRADEROPS_JOURNAL_CONSUMER": "journal-kill-test",
        "TRADEROPS_LOG_LEVEL": "WARNING",
    }
    cmd = [sys.executable, "-c", "from app.journal.cli import journal_app; journal_app()",
           "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    log = (tmp_path / "journal.log").open("wb")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, timeout=30, proc=proc)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            synced = await redis.hget(Keys.JOURNAL_STATUS, "synced_total")
            if synced and 300 <= int(synced) < 3000:
                break
            await asyncio.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        left = (await backlog(redis))["backlog"]
        assert 0 < left < 3000, left
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while (await backlog(redis))["backlog"] and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert (await backlog(redis))["backlog"] == 0
    finally:
        stop_process(proc, timeout=15)
        log.close()
    ids = await count_in_tradenote(tradenote_srv, tradenote_user)
    session = tradenote_srv.login(tradenote_user["username"], tradenote_user["password"])
    docs = tradenote_srv.ui_trades(session, 0, 2**40)
    dups = sorted({i for i in ids if ids.count(i) > 1})
    assert len(ids) == 3000 and len(set(ids)) == 3000, (
        f"{len(docs)} day documents; duplicated fills {dups[:5]}; "
        + (tmp_path / "journal.log").read_text()[-3000:]
    )


async def test_a_duplicate_day_document_is_merged_and_removed(
    redis: Redis, journal: Journal, tradenote_srv: ParseServer, tradenote_user: dict[str, Any]
) -> None:
    """A killed worker's last write can land after its successor re-created the day:
    the next sync of that day merges the two documents into one, each fill once."""
    day = date(2025, 6, 3)
    first = [mkfill(9000 + i, Intent.BUY, 1, 10.0, at(day, 10, 0, i)) for i in range(3)]
    await journal.sync(first)
    user = await journal.user()
    docs = await journal.client.find_days(user, [int(at(day, 0, 0))])
    (doc,) = docs.values()
    copy = {
        k: doc[k]
        for k in ("executions", "trades", "blotter", "pAndL", "date", "dateUnix", "openPositions")
        if k in doc
    }
    await journal.client.batch(
        [
            {
                "method": "POST",
                "path": "classes/trades",
                "body": {**copy, "user": user.pointer, "ACL": user.acl},
            }
        ]
    )
    assert len(await count_in_tradenote(tradenote_srv, tradenote_user)) == 6  # the duplicate
    await journal.sync([mkfill(9100, Intent.SELL, 3, 11.0, at(day, 11, 0))])
    ids = await count_in_tradenote(tradenote_srv, tradenote_user)
    assert sorted(ids) == sorted([f.id for f in first] + ["fill-9100"])
    session = tradenote_srv.login(tradenote_user["username"], tradenote_user["password"])
    assert len(tradenote_srv.ui_trades(session, int(at(day, 0, 0)), int(at(day, 23, 0)))) == 1
