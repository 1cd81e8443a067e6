"""Runner against a fake datahub on loopback: signed idempotent alerts, retries, the
scheduler loop on a manual clock, misfires, no overlap, /health and /metrics, run-once."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from prometheus_client import REGISTRY
from typer.testing import CliRunner

from app.feeds.simulated import SimulatedFeed
from app.kairos.alerts import alert_id
from app.kairos.cli import kairos_app
from app.kairos.clock import ManualClock
from app.kairos.datahub_client import DatahubClient
from app.kairos.jobs import LoadedJob, load_jobs, parse_job
from app.kairos.runner import Kairos, MemoryState, RunReport
from app.kairos.service import create_app
from app.kairos.testing import FakeDatahub, bars_from, positions_payload
from app.retry import RetryPolicy

JOBS_DIR = Path(__file__).resolve().parents[2] / "deployment/kairos/jobs"
KEY = b"test-hmac-key"
ADMIN = "admin-key"
NY = ZoneInfo("America/New_York")
T0 = int(datetime(2026, 11, 25, 14, 30, tzinfo=UTC).timestamp())
FAST = RetryPolicy(attempts=4, total_timeout=10, wait_initial=0.01, wait_max=0.05, wait_jitter=0.01)


def shipped(name: str) -> LoadedJob:
    return {j.name: j for j in load_jobs(JOBS_DIR).jobs}[name]


def falling(drop: float, last_volume: float) -> list:  # type: ignore[type-arg]
    closes = [100 - 0.05 * i + (0.08 if i % 2 else 0.0) for i in range(149)]
    closes.append(closes[-1] - drop)
    return bars_from(closes, [1000.0] * 149 + [last_volume], start=T0)


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
async def hub() -> AsyncIterator[FakeDatahub]:
    async with FakeDatahub(hmac_key=KEY, admin_key=ADMIN) as fake:
        yield fake


def kairos_for(hub: FakeDatahub, *jobs: LoadedJob, key: bytes = KEY, **kw: object) -> Kairos:
    client = DatahubClient(hub.url, hmac_key=key, admin_key=ADMIN, retry=FAST)
    return Kairos(list(jobs), client, **kw)  # type: ignore[arg-type]


AFTER_BARS = datetime.fromtimestamp(T0 + 150 * 300 + 5, tz=UTC)  # the last fixture bar is complete


async def test_run_posts_signed_idempotent_alerts(hub: FakeDatahub) -> None:
    hub.bars = {"AAPL": falling(2.0, 3000), "MSFT": falling(2.0, 1000)}
    hub.positions = positions_payload({"TSLA": (10, 250.0)})
    kairos = kairos_for(hub, shipped("momentum"))
    before = metric("traderops_kairos_signals_total", job="momentum", action="buy")
    async with kairos.client:
        report = await kairos.run_job("momentum", now=AFTER_BARS)
        assert report.outcome == "ok", report.error
        assert [a["ticker"] for a in hub.alerts] == ["AAPL"]
        alert = hub.alerts[0]
        last = hub.bars["AAPL"][-1]
        assert alert["alert_id"] == alert_id("momentum", "AAPL", "buy", last.time)
        assert alert["time"] == datetime.fromtimestamp(last.time, UTC).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )
        assert alert["quantity"] == int(100_000 * 0.05 // last.close)
        assert alert["strategy"] == "momentum" and alert["order_type"] == "market"
        # A repeated run on the same bar sends the same alert id: the datahub keeps one.
        again = await kairos.run_job("momentum", now=AFTER_BARS + timedelta(seconds=30))
        assert again.alerts == report.alerts
        assert again.results[0].body["duplicate"] is True
        assert len(hub.alerts) == 1 and hub.posts == 2
    assert metric("traderops_kairos_signals_total", job="momentum", action="buy") == before + 2


async def test_forming_bar_is_never_used(hub: FakeDatahub) -> None:
    hub.bars = {"AAPL": falling(2.0, 3000)}
    kairos = kairos_for(hub, shipped("momentum"))
    async with kairos.client:
        # One minute into the last bar: it is still forming, so no breakout is seen yet.
        report = await kairos.run_job(
            "momentum", now=AFTER_BARS - timedelta(minutes=4), dry_run=True
        )
    assert report.outcome == "ok" and report.signals == []


async def test_5xx_is_retried_4xx_is_final(hub: FakeDatahub) -> None:
    hub.bars = {"AAPL": falling(2.0, 3000)}
    kairos = kairos_for(hub, shipped("momentum"))
    async with kairos.client:
        hub.fail_webhook_times = 2
        report = await kairos.run_job("momentum", now=AFTER_BARS)
        assert report.outcome == "ok" and report.results[0].accepted
        assert hub.posts == 3 and len(hub.alerts) == 1

        hub.webhook_status, hub.posts = 422, 0
        hub.bars = {"AAPL": falling(2.5, 3000)}  # a different bar time would be a new alert...
        hub.bars["AAPL"] = bars_from(
            [b.close for b in hub.bars["AAPL"]],
            [b.volume for b in hub.bars["AAPL"]],
            start=T0 + 300,
        )
        report = await kairos.run_job("momentum", now=AFTER_BARS + timedelta(minutes=5))
        assert hub.posts == 1  # ...refused once, never retried
        assert report.results[0].status == 422 and not report.results[0].accepted


async def test_bad_signature_is_refused_and_not_retried(hub: FakeDatahub) -> None:
    hub.bars = {"AAPL": falling(2.0, 3000)}
    kairos = kairos_for(hub, shipped("momentum"), key=b"wrong")
    async with kairos.client:
        report = await kairos.run_job("momentum", now=AFTER_BARS)
    assert hub.posts == 1 and hub.alerts == []
    assert report.results[0].status == 401


async def test_datahub_down_is_an_error_outcome() -> None:
    client = DatahubClient("http://127.0.0.1:9", hmac_key=KEY, retry=FAST)
    kairos = Kairos([shipped("momentum")], client)
    before = metric("traderops_kairos_runs_total", job="momentum", outcome="error")
    async with client:
        report = await kairos.run_job("momentum", now=AFTER_BARS)
    assert report.outcome == "error"
    assert (report.error or "").startswith("GET /udf/history: ClientConnectorError")
    assert metric("traderops_kairos_runs_total", job="momentum", outcome="error") == before + 1


async def test_no_overlapping_runs(hub: FakeDatahub) -> None:
    kairos = kairos_for(hub, shipped("momentum"))
    async with kairos.locks["momentum"]:  # a run in progress
        report = await kairos.run_job("momentum", now=AFTER_BARS)
    assert report.outcome == "overlap"
    await kairos.client.close()


def five_minute_job(name: str = "sched_test", grace: int = 120) -> LoadedJob:
    return parse_job(
        {
            "name": name,
            "schedule": "*/5 * * * *",
            "strategy": "momentum",
            "symbols": ["AAPL", "MSFT"],
            "risk": {"position_size": 0.05},
            "misfire_grace_seconds": grace,
        },
        Path(f"{name}.yaml"),
    )


async def drive(
    kairos: Kairos, clock: ManualClock, until: datetime, reports: list[RunReport]
) -> None:
    """Advance the manual clock wake-up by wake-up, letting each run finish for real."""
    task = asyncio.create_task(kairos.run_forever())
    try:
        for _ in range(1000):
            await asyncio.sleep(0)
            for _ in range(200):  # wait for the loop to go back to sleep
                if clock.next_wakeup is not None:
                    break
                await asyncio.sleep(0.01)
            nxt = clock.next_wakeup
            if nxt is None or nxt > until:
                break
            await clock.advance_to(nxt)
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_scheduler_fires_only_in_session_across_the_half_day() -> None:
    feed = SimulatedFeed(["AAPL", "MSFT"], seed=7)
    async with FakeDatahub(hmac_key=KEY, admin_key=ADMIN, feed=feed) as fake:
        job = five_minute_job()
        start = datetime(2026, 11, 27, 12, 31, tzinfo=NY).astimezone(UTC)
        clock = ManualClock(start)
        reports: list[RunReport] = []
        kairos = kairos_for(fake, job, clock=clock, state=MemoryState(), on_report=reports.append)
        await drive(
            kairos, clock, datetime(2026, 11, 30, 10, 1, tzinfo=NY).astimezone(UTC), reports
        )
        await kairos.client.close()
    fired = [r.nominal.astimezone(NY).strftime("%a %H:%M") for r in reports if r.nominal]
    # The half day closes at 13:00: 12:35 .. 12:55, then Monday from the open.
    assert fired == [
        "Fri 12:35", "Fri 12:40", "Fri 12:45", "Fri 12:50", "Fri 12:55",
        "Mon 09:30", "Mon 09:35", "Mon 09:40", "Mon 09:45", "Mon 09:50", "Mon 09:55", "Mon 10:00",
    ]  # fmt: skip
    assert all(r.outcome == "ok" for r in reports), [r.error for r in reports]
    jitter = kairos.schedules["sched_test"].jitter
    assert all(r.started == r.nominal + jitter for r in reports if r.nominal)


@pytest.mark.parametrize(("late", "runs"), [(timedelta(seconds=60), 1), (timedelta(minutes=4), 0)])
async def test_misfire_after_downtime(hub: FakeDatahub, late: timedelta, runs: int) -> None:
    name = f"misfire_{runs}"
    job = five_minute_job(name, grace=120)
    state = MemoryState()
    state.set_last_fire(name, datetime(2026, 11, 25, 10, 0, tzinfo=NY).astimezone(UTC))
    jitter = job.spec.jitter_seconds  # upper bound; the exact value is per job
    restart = (
        datetime(2026, 11, 25, 10, 30, tzinfo=NY).astimezone(UTC) + late + timedelta(seconds=jitter)
    )
    clock = ManualClock(restart)
    reports: list[RunReport] = []
    kairos = kairos_for(hub, job, clock=clock, state=state, on_report=reports.append)
    await drive(kairos, clock, restart, reports)
    await kairos.client.close()
    # 10:05 .. 10:25 are missed; 10:30 runs once if still within the grace period.
    assert [r.nominal for r in reports] == [datetime(2026, 11, 25, 10, 30, tzinfo=NY)] * runs
    missed = 5 + (1 - runs)
    assert metric("traderops_kairos_runs_total", job=name, outcome="missed") == missed
    assert state.last_fire(name) == datetime(2026, 11, 25, 10, 30, tzinfo=NY)


async def test_health_and_metrics(hub: FakeDatahub) -> None:
    kairos = kairos_for(hub, shipped("momentum"), shipped("portfolio_rebalance"))
    app = create_app(kairos, run_scheduler=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://kairos") as client:
        health = await client.get("/health")
        assert health.status_code == 200
        body = health.json()
        assert body["status"] == "ok"
        assert [j["name"] for j in body["jobs"]] == ["momentum", "portfolio_rebalance"]
        metrics = await client.get("/metrics")
        assert metrics.status_code == 200
        assert "traderops_kairos_runs_total" in metrics.text
    await kairos.client.close()


@contextmanager
def threaded_hub(feed: SimulatedFeed) -> Iterator[FakeDatahub]:
    """The fake datahub on its own loop, for CLI commands that call asyncio.run()."""
    loop = asyncio.new_event_loop()
    fake = FakeDatahub(hmac_key=KEY, admin_key=ADMIN, feed=feed)
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(fake.start(), loop).result(10)
    try:
        yield fake
    finally:
        asyncio.run_coroutine_threadsafe(fake.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def test_cli_run_once_dry_run_and_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEROPS_WEBHOOK_HMAC_KEY", KEY.decode())
    monkeypatch.setenv("TRADEROPS_ADMIN_API_KEY", ADMIN)
    monkeypatch.setenv("TRADEROPS_KAIROS_JOBS", str(JOBS_DIR))
    runner = CliRunner()
    feed = SimulatedFeed(["SPY", "QQQ", "VTI", "IWM", "XLK", "XLF", "XLE", "XLV"], seed=1)
    with threaded_hub(feed) as fake:
        fake.quotes = {
            s: {"symbol": s, "last": 100.0, "bid": 99.99, "ask": 100.01} for s in feed.instruments
        }
        at = "2026-11-25T21:30:00+00:00"
        res = runner.invoke(
            kairos_app,
            ["run-once", "portfolio_rebalance", "--dry-run", "--at", at, "--datahub-url", fake.url],
        )
        assert res.exit_code == 0, res.output
        lines = [json.loads(ln) for ln in res.stdout.splitlines() if ln.startswith("{")]
        assert {a["ticker"] for a in lines} == set(feed.instruments)  # all cash: buy every target
        assert fake.posts == 0  # dry run
        res = runner.invoke(
            kairos_app, ["run-once", "portfolio_rebalance", "--at", at, "--datahub-url", fake.url]
        )
        assert res.exit_code == 0, res.output
        assert len(fake.alerts) == 8
    listing = runner.invoke(kairos_app, ["list"])
    assert listing.exit_code == 0
    assert "momentum" in listing.stdout and "after_close+30m" in listing.stdout
    unknown = runner.invoke(kairos_app, ["run-once", "nope", "--dry-run"])
    assert unknown.exit_code == 2
