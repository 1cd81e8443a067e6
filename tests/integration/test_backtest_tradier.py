"""`trader-ops backtest --tradier`: bars from Tradier's history (the Tradier-protocol test
server), cached on disk, so the second run of the same range asks nothing."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.fakes.tradier_server import FakeTradier, timesales_rows

ROOT = Path(__file__).resolve().parents[2]
OPEN = int(datetime(2026, 11, 4, 14, 30, tzinfo=UTC).timestamp())  # 09:30 New York
JOB = """
name: from_tradier
schedule: "*/30 * * * 1-5"
calendar: XNYS
session: regular
strategy: tests.integration.kairos_parity_strategy:up_buys_down_exits
symbols: [AAPL, MSFT]
parameters: {resolution: "5", bars: 10}
"""


@pytest.fixture
async def fake() -> AsyncIterator[FakeTradier]:
    server = FakeTradier()
    for symbol, base in (("AAPL", 200.0), ("MSFT", 400.0)):
        rows = timesales_rows(OPEN, 78, 5, base)  # the session's 5-minute bars
        for i, row in enumerate(rows):  # up and down, so the job trades both ways
            step = 1.0 if i % 3 else -2.0
            row["close"] = row["open"] + step
            row["high"] = max(row["high"], row["close"])
            row["low"] = min(row["low"], row["close"])
        server.timesales[(symbol, "5min")] = rows
    await server.start()
    yield server
    await server.close()


async def backtest(fake: FakeTradier, tmp: Path, out: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEROPS_")}
    env |= {
        "TRADEROPS_TRADIER_TOKEN": fake.token,
        "TRADEROPS_TRADIER_BASE_URL": fake.base_url,
        "TRADEROPS_DATA_DIR": str(tmp / "data"),
        "PYTHONPATH": str(ROOT),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app.cli", "backtest", str(tmp / "job.yaml"),
        "--from", "2026-11-04", "--to", "2026-11-04", "--tradier", "--quiet",
        "--out", str(tmp / out),
        cwd=tmp, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 300)
    return proc.returncode or 0, stdout.decode(), stderr.decode()


async def test_tradier_history_is_fetched_once_and_traded(
    fake: FakeTradier, tmp_path: Path
) -> None:
    (tmp_path / "job.yaml").write_text(JOB)
    code, out, err = await backtest(fake, tmp_path, "a")
    assert code == 0, err
    assert "2 symbol(s) fetched" in err and "fills" in out
    asked = len(fake.calls("/markets/timesales"))
    assert asked >= 2
    cached = tmp_path / "data" / "bars" / "tradier"
    assert {p.name for p in cached.glob("*.csv")} == {"AAPL_5.csv", "MSFT_5.csv"}
    fills = (tmp_path / "a" / "fills.csv").read_text().splitlines()[1:]
    assert fills, "the job traded on Tradier's bars"
    # prices are Tradier's closes (1 bp of slippage)
    closes = {float(r["close"]) for rows in fake.timesales.values() for r in rows}
    assert all(
        any(
            abs(float(line.split(",")[5]) - c * (1 + s * 1e-4)) < 1e-3
            for c in closes
            for s in (1, -1)
        )
        for line in fills
    )
    code, out, err = await backtest(fake, tmp_path, "b")
    assert code == 0, err
    assert "0 symbol(s) fetched" in err
    assert len(fake.calls("/markets/timesales")) == asked  # the cache answered
    assert (tmp_path / "a" / "fills.csv").read_bytes() == (
        tmp_path / "b" / "fills.csv"
    ).read_bytes()
