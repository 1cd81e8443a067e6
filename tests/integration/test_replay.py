"""``trader-ops replay``: TradingView's alert log (the fixture is in the export's format;
see tests/unit/test_tvlog.py for where the format comes from) through the live path on
a simulated clock, the same decisions as the live webhook, and ``--compare`` with a live
record.

Live parity here is of decisions (status, check, quantity): the live datahub decides at
the wall clock, so its fills are at other prices than the replay's at the log's times;
the risk file turns off the checks that depend on the hour (market hours) or on wall
time between alerts (rate limits, duplicates) so that the two see the same alerts.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from redis.asyncio import Redis
from typer.testing import CliRunner

from app.backtest.replay import (
    ReplayAlert,
    compare,
    live_record,
    prepare,
    replay,
    stored_alerts,
)
from app.backtest.results import write
from app.backtest.runner import BacktestConfig
from app.backtest.tvlog import load_log
from app.bus import Keys
from app.cli import cli
from app.datahub.app import create_app
from app.execution.config import load_execution_config
from tests.apps import serve, settings_for
from tests.servers import RedisServer
from tests.support.poll import until_json

FIXTURE = Path(__file__).parents[1] / "fixtures" / "TradingView_Alerts_Log_2025-03-04_5f2c1.csv"
ADMIN = "admin-key-for-tests"
RISK_YAML = """
market_hours: null
rate_limit: null
duplicate: null
price_collar: null
"""


def alerts() -> list[ReplayAlert]:
    rows, _ = load_log(FIXTURE)
    return [prepare(r.time.timestamp(), r.body, f"line {r.line}") for r in rows]


def config(risk: Path | None) -> BacktestConfig:
    limits, sizing = load_execution_config(risk)
    return BacktestConfig(
        jobs=[],
        start=datetime(2025, 3, 3, tzinfo=UTC),
        end=datetime(2025, 3, 3, 16, 30, tzinfo=UTC),
        limits=limits,
        sizing=sizing,
        name="replay-test",
    )


def risk_file(tmp_path: Path) -> Path:
    path = tmp_path / "risk.yaml"
    path.write_text(RISK_YAML)
    return path


def verdicts(decisions: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(d["status"], d.get("check"), d.get("quantity")) for d in decisions]


async def test_a_replay_is_the_same_twice_byte_for_byte(tmp_path: Path) -> None:
    files = []
    for n in (1, 2):
        run = await replay(config(None), alerts())
        write(run.result, tmp_path / str(n))
        files.append({p.name: p.read_bytes() for p in sorted((tmp_path / str(n)).iterdir())})
        assert len(run.result.fills) == 5 and len(run.rows) == 6
    assert files[0] == files[1]
    assert verdicts([r.decision or {} for r in run.rows]) == [
        ("accepted", None, 10),
        ("accepted", None, 5),
        ("accepted", None, 3),
        ("accepted", None, 10),
        ("denied", "buying_power", 5000),
        ("accepted", None, 5),
    ]


async def test_the_replay_decides_as_the_live_webhook(
    redis_srv: RedisServer, tmp_path: Path
) -> None:
    """The fixture's messages, as TradingView sent them (passphrase included), to a real
    datahub's webhook, and replayed: the same decisions, alert by alert."""
    risk = risk_file(tmp_path)
    async with Redis.from_url(redis_srv.url) as r:
        await r.flushall()
    settings = settings_for(
        redis_srv.url,
        symbols=["AAPL", "MSFT", "SPY"],
        webhook_passphrase="tv-secret",
        admin_api_key=ADMIN,
        risk_config=risk,
        sim_quote_rate=20,
    )
    rows, _ = load_log(FIXTURE)
    live: list[dict[str, Any]] = []
    app = create_app(settings)
    async with (
        serve(app) as url,
        httpx.AsyncClient(base_url=url, timeout=10, headers={"X-API-Key": ADMIN}) as client,
    ):
        for row in rows:  # oldest first, each filled before the next, as minutes apart
            answer = await client.post("/webhook/tradingview", content=row.body)
            assert answer.status_code in (200, 202), answer.text
            decision = answer.json()
            live.append(decision)
            if decision["status"] == "accepted":
                await until_json(
                    client,
                    f"/api/v1/orders/{decision['order_id']}",
                    lambda o: o["status"] == "filled",
                )
    run = await replay(config(risk), alerts())
    replayed = [r.decision or {} for r in run.rows]
    assert verdicts(replayed) == verdicts(live)
    assert [d["status"] for d in live].count("denied") == 1
    # the ids: given ones are kept; an id-less alert's is the intake's (content + time)
    assert [d["alert_id"] for d in replayed if not d["alert_id"].startswith("h-")] == [
        d["alert_id"] for d in live if not d["alert_id"].startswith("h-")
    ]
    derived = [(a["alert_id"], b["alert_id"]) for a, b in zip(replayed, live, strict=True)]
    assert all(a.rsplit("-", 1)[0] == b.rsplit("-", 1)[0] for a, b in derived)

    # the account's own stored alerts (as taken in, at their arrival times), replayed and
    # compared with what the engine did: the same alerts, the same decisions
    async with Redis.from_url(redis_srv.url) as r:
        stored = await stored_alerts(r, "default", 0, time.time() + 1)
        assert [a.alert_id for a in stored] == [d["alert_id"] for d in live]
        assert all(b"passphrase" not in a.body for a in stored)
        start = datetime.fromtimestamp(stored[0].time - 60, UTC)
        again = await replay(replace(config(risk), start=start, end=start), stored)
        record = await live_record(r, "default", [a.alert_id for a in stored], 0, time.time())
    assert verdicts([r.decision or {} for r in again.rows]) == verdicts(live)
    report = compare(again, record)
    assert report["received_live"] == 6
    assert not [d for d in report["differences"] if d["kind"] != "fill_price"]
    # the same from the command line
    first, last = (
        datetime.fromtimestamp(a.time, UTC).date().isoformat() for a in (stored[0], stored[-1])
    )
    out = tmp_path / "stored"
    args = ["replay", redis_srv.url, "--from", first, "--to", last, "--out", str(out)]
    args += ["--risk", str(risk), "--compare", redis_srv.url]
    result = await asyncio.to_thread(CliRunner().invoke, cli, args)
    assert result.exit_code == 0, result.output
    assert "6 alerts replayed (5 accepted, 1 denied), 0 rows skipped" in result.output
    assert "compared with account default: 6 received live" in result.output
    assert (out / "compare.json").is_file()


async def tweak_fill(redis: Redis, alert_id: str, by: float) -> None:
    """The live record's fill of ``alert_id``'s order at another price."""
    orders = {
        json.loads(raw)["id"]
        for raw in await redis.mget(
            [
                Keys.order(o.decode())
                for o in await redis.zrange(Keys.account("default").recent_orders, 0, -1)
            ]
        )
        if raw and json.loads(raw)["request"]["alert_id"] == alert_id
    }
    for entry_id, fields in await redis.xrange(Keys.FILLS_STREAM):
        fill = orjson.loads(fields[b"fill"])
        if fill["order_id"] in orders:
            fill["price"] = round(fill["price"] + by, 4)
            await redis.xdel(Keys.FILLS_STREAM, entry_id)
            await redis.xadd(Keys.FILLS_STREAM, {**fields, b"fill": orjson.dumps(fill)})
            return
    raise AssertionError(f"no fill of {alert_id}")


def test_compare_names_a_missing_alert_and_a_fill_at_another_price(
    redis_srv: RedisServer, tmp_path: Path
) -> None:
    """The live record: the live path (engine, paper broker, store) at the log's times on
    the live Redis, for every alert but SPY's (never received), with AAPL's buy filled
    $1 higher; then ``trader-ops replay --compare`` that Redis."""

    async def record() -> None:
        async with Redis.from_url(redis_srv.url) as r:
            await r.flushall()
            subset = [a for a in alerts() if a.alert_id != "tv-spy-1"]
            await replay(config(None), subset, redis_url=redis_srv.url)
            await tweak_fill(r, "tv-aapl-1", 1.0)

    asyncio.run(record())
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli, ["replay", str(FIXTURE), "--out", str(out), "--compare", redis_srv.url]
    )
    assert result.exit_code == 0, result.output
    assert "6 alerts replayed (5 accepted, 1 denied), 2 rows skipped" in result.output
    assert "compared with account default: 5 received live" in result.output
    report = json.loads((out / "compare.json").read_text())
    kinds = [(d["kind"], d["alert_id"]) for d in report["differences"]]
    assert kinds == [("fill_price", "tv-aapl-1"), ("not_received_live", "tv-spy-1")]
    price = report["differences"][0]
    assert price["symbol"] == "AAPL" and price["intent"] == "buy"
    assert round(price["live"] - price["replay"], 4) == 1.0 == -price["difference"]
    # the AAPL round trip made $10 less live; SPY's position is open (nothing realised)
    assert report["pnl"]["difference"] == 10.0
    assert report["received_live"] == 5 and report["alerts"] == 6
    assert [r["reason"].split(" (")[0] for r in report["rejected_rows"]] == [
        "the alert message is not JSON",
        "invalid alert",
    ]
    lines = (out / "compare.csv").read_text().splitlines()
    assert len(lines) == 7 and lines[0].startswith("time,source,alert_id,live_alert_id")
    spy = next(line for line in lines if "tv-spy-1" in line)
    assert "not_received_live" in spy
    assert {"summary.json", "orders.csv", "fills.csv", "equity.csv", "replay.csv"} <= {
        p.name for p in out.iterdir()
    }
