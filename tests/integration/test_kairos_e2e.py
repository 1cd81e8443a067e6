"""kairos -> signed alert -> datahub webhook -> paper order, against the real datahub."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import httpx
from redis.asyncio import Redis

from app.datahub.app import create_app
from app.kairos.service import build_kairos
from tests.apps import serve, settings_for
from tests.servers import RedisServer, free_port

JOB = """
name: e2e_buyer
schedule: "*/5 * * * *"
session: always
strategy: tests.integration.kairos_fixture_strategy:buy_last_bar
symbols: [AAPL, SPY]
parameters: {resolution: "5", bars: 20}
"""
RISK = "rate_limit: null\nduplicate: null\n"


def kairos_settings(redis_url: str, tmp: Path, **kw: object) -> object:
    jobs = tmp / "jobs"
    jobs.mkdir(exist_ok=True)
    (jobs / "e2e.yaml").write_text(JOB)
    (tmp / "risk.yaml").write_text(RISK)
    return settings_for(
        redis_url,
        symbols=["AAPL", "SPY"],
        webhook_hmac_key="e2e-hmac",
        admin_api_key="e2e-admin",
        risk_config=tmp / "risk.yaml",
        kairos_jobs=jobs,
        data_dir=tmp,
        **kw,
    )


async def test_a_run_places_orders_and_a_repeat_places_none(
    redis_srv: RedisServer, redis: Redis, tmp_path: Path
) -> None:
    settings = kairos_settings(redis_srv.url, tmp_path)
    async with (
        serve(create_app(settings)) as url,
        httpx.AsyncClient(base_url=url, headers={"X-API-Key": "e2e-admin"}) as api,
    ):
        kairos, job_set = build_kairos(settings, datahub_url=url, persist=False)
        assert not job_set.errors
        now = datetime.now(UTC)
        try:
            first = await kairos.run_job("e2e_buyer", now=now)
            again = await kairos.run_job("e2e_buyer", now=now)  # a retried / duplicated run
        finally:
            await kairos.client.close()
        assert first.outcome == "ok" and len(first.results) == 2
        assert all(r.status == 202 for r in first.results), [r.body for r in first.results]
        assert [r.body["duplicate"] for r in again.results] == [True, True]
        assert {r.body["order_id"] for r in again.results} == {
            r.body["order_id"] for r in first.results
        }
        for _ in range(100):
            positions = (await api.get("/api/v1/positions")).json()["positions"]
            if sorted((p["symbol"], p["quantity"]) for p in positions) == [("AAPL", 2), ("SPY", 2)]:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"positions never reached 2 + 2: {positions}")
        orders = (await api.get("/api/v1/orders")).json()["orders"]
        assert len(orders) == 2 and {o["request"]["strategy"] for o in orders} == {"e2e_buyer"}


async def test_datahub_outage_is_retried_then_counted(
    redis_srv: RedisServer, redis: Redis, tmp_path: Path
) -> None:
    """Nothing listens: the run retries with backoff, fails, is counted, and places nothing."""
    settings = kairos_settings(redis_srv.url, tmp_path)
    kairos, _ = build_kairos(settings, datahub_url=f"http://127.0.0.1:{free_port()}", persist=False)
    try:
        report = await kairos.run_job("e2e_buyer", now=datetime.now(UTC))
    finally:
        await kairos.client.close()
    assert report.outcome == "error"
    assert await redis.xlen("traderops:stream:orders") == 0
