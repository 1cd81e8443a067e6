"""Parity: a kairos job run live for one simulated trading day (the real datahub with its
engine and paper broker, the clock driven) and the backtest of the same job over the same
bars place the same orders, fill at the same prices, hold the same positions and make the
same P&L to the cent; a risk denial live is the same denial in the backtest."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis

from app.backtest.clock import SimClock
from app.backtest.runner import BacktestConfig, fire_times, run_backtest
from app.datahub.app import create_app
from app.execution.config import load_execution_config
from app.feeds.simulated import SimulatedFeed
from app.kairos.jobs import load_job_file
from app.kairos.service import build_kairos
from app.sessions import get_sessions
from tests.apps import serve, settings_for
from tests.servers import RedisServer

SYMBOLS = ["AAPL", "MSFT"]
JOB = """
name: parity
schedule: "*/30 * * * 1-5"
calendar: XNYS
session: regular
strategy: tests.integration.kairos_parity_strategy:up_buys_down_exits
symbols: [AAPL, MSFT]
parameters: {resolution: "5", bars: 10}
"""
# the third buy in a row would hold 6 shares: denied by position_size, live and here
RISK = "rate_limit: null\nduplicate: null\nprice_collar: null\nvolatility: null\n"
RISK += "position_size: {max_shares: 4, max_notional: null}\n"


def last_full_session() -> tuple[datetime, datetime]:
    """The latest full XNYS session before today: recent enough for the webhook's freshness
    window (its alerts carry their bar's time), from half an hour before the open to after
    the close."""
    sessions = get_sessions("XNYS")
    day = datetime.now(UTC).date()
    while True:
        day -= timedelta(days=1)
        session = sessions.session(day)
        if session is not None and not sessions.is_early_close(day):
            return session.open - timedelta(minutes=30), session.close + timedelta(minutes=30)


DAY_START, DAY_END = last_full_session()


def fill_rows(fills: list[dict[str, Any]]) -> list[tuple[str, str, float, float]]:
    return sorted(
        (f["symbol"], f["intent"], float(f["quantity"]), round(float(f["price"]), 4)) for f in fills
    )


async def live_day(redis_url: str, tmp: Path) -> dict[str, Any]:
    jobs = tmp / "jobs"
    jobs.mkdir()
    (jobs / "parity.yaml").write_text(JOB)
    (tmp / "risk.yaml").write_text(RISK)
    clock = SimClock(DAY_START.timestamp())
    feed = SimulatedFeed(SYMBOLS, clock=clock.time)
    settings = settings_for(
        redis_url,
        symbols=["SPY"],  # streamed, never traded: the job's quotes are read at the driven time
        quote_ttl_seconds=0.001,
        webhook_hmac_key="parity-hmac",
        admin_api_key="parity-admin",
        risk_config=tmp / "risk.yaml",
        kairos_jobs=jobs,
        data_dir=tmp,
        market_hours="always",
    )
    async with (
        serve(create_app(settings, feed=feed)) as url,
        httpx.AsyncClient(base_url=url, headers={"X-API-Key": "parity-admin"}) as api,
    ):
        kairos, job_set = build_kairos(settings, datahub_url=url, persist=False)
        assert not job_set.errors
        decisions: list[dict[str, Any]] = []
        try:
            for when, name in fire_times(kairos, DAY_START, DAY_END):
                clock.set(when)
                report = await kairos.run_job(name, now=when, nominal=when)
                assert report.outcome == "ok", report.error
                decisions.extend(r.body for r in report.results)
                for _ in range(200):  # market orders fill on arrival: wait until none is open
                    if not (await api.get("/api/v1/orders", params={"status": "open"})).json()[
                        "orders"
                    ]:
                        break
                    await asyncio.sleep(0.02)
        finally:
            await kairos.client.close()
        orders = (await api.get("/api/v1/orders", params={"limit": 1000})).json()["orders"]
        positions = (await api.get("/api/v1/positions")).json()["positions"]
        account = (await api.get("/api/v1/account")).json()
    fills = [
        {"symbol": o["request"]["symbol"], "intent": o["request"]["intent"],
         "quantity": o["filled_quantity"], "price": o["avg_fill_price"]}
        for o in orders if o["filled_quantity"]
    ]  # fmt: skip
    return {"decisions": decisions, "fills": fills, "positions": positions, "account": account}


async def test_a_day_live_and_its_backtest_are_the_same(
    redis_srv: RedisServer, redis: Redis, tmp_path: Path
) -> None:
    live = await live_day(redis_srv.url, tmp_path)
    limits, sizing = load_execution_config(tmp_path / "risk.yaml")
    config = BacktestConfig(
        jobs=[load_job_file(tmp_path / "jobs" / "parity.yaml")],
        start=DAY_START,
        end=DAY_END,
        limits=limits,
        sizing=sizing,
        market_hours="always",
        quote_seconds=0,  # live had no quotes between runs either
    )
    await redis.flushall()
    test = await run_backtest(config, redis_url=redis_srv.url)

    def brief(d: dict[str, Any]) -> tuple[Any, ...]:
        return (d["alert_id"], d["status"], d.get("quantity"), d.get("check"), d.get("reason"))

    assert [brief(d) for d in test.decisions] == [brief(d) for d in live["decisions"]]
    denied = [d for d in test.decisions if d["status"] == "denied"]
    assert denied and {d["check"] for d in denied} == {"position_size"}  # the same denial
    ours = [f.model_dump(mode="json") for f in test.fills]
    assert fill_rows(ours) == fill_rows(live["fills"])
    assert sorted((p["symbol"], p["quantity"], p["avg_price"]) for p in test.positions) == sorted(
        (p["symbol"], p["quantity"], p["avg_price"]) for p in live["positions"]
    )
    realized = {p["symbol"]: p["realized_pnl"] for p in test.positions}
    assert realized == {p["symbol"]: p["realized_pnl"] for p in live["positions"]}
    assert round(test.equity[-1][1] - 100_000 - sum(
        (p["last_price"] - p["avg_price"]) * p["quantity"] for p in test.positions
    ), 2) == round(live["account"]["cash"] + sum(
        p["avg_price"] * p["quantity"] for p in live["positions"]
    ) - 100_000, 2)  # fmt: skip
