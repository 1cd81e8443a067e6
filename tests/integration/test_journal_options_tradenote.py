"""Options in the real TradeNote 19.0.3: what the journal writes for option fills equals
what TradeNote's own importer stores for the same fills (its Template CSV with Type
``call``/``put``), field for field; the trades are calls and puts with dollar P&L; and
``/api/v1/analytics`` reports the same P&L, broken down by underlying and strategy.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from app.bus import Keys
from app.journal.analytics import analytics
from app.journal.tradenote import day_unix
from app.journal.worker import JournalWorker
from app.models.orders import Fill, Intent
from tests.integration.test_journal_oracle import (
    D1,
    D2,
    NY,
    at,
    differences,
    intended,
    journal_user,
    run_oracle,
)
from tests.tradenote.server import TradeNoteServer, tradenote

__all__ = ["journal_user", "tradenote"]

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
CALL = "SPY261218C00600000"
PUT = "SPY261218P00550000"
QQQ_CALL = "QQQ260116C00520000"


def fill(n: int, intent: Intent, qty: float, price: float, t: float, symbol: str,
         commission: float = 0.0, strategy: str = "wheel") -> Fill:  # fmt: skip
    return Fill(id=f"opt-{n}", order_id=f"ord-{n}", broker="template", account="acct-o",
                symbol=symbol, intent=intent, quantity=qty, price=price, commission=commission,
                time=t, strategy=strategy)  # fmt: skip


def option_fills() -> list[Fill]:
    """Day 1: a SPY call bought 2 at 1.50, sold at 2.25 (+$150 before $1.30 commissions);
    SPY shares round trip (strategy trend); a QQQ call written at 3.10, bought back at 2.60
    (+$50). Day 2: a SPY put bought 3 at 1.20 that expires worthless (a fill at 0)."""
    return [
        fill(1, Intent.BUY, 2, 1.50, at(D1, 10, 0), CALL, 0.65),
        fill(2, Intent.SELL, 2, 2.25, at(D1, 11, 0), CALL, 0.65),
        fill(3, Intent.BUY, 10, 560.0, at(D1, 10, 30), "SPY", 1.0, "trend"),
        fill(4, Intent.SELL, 10, 562.5, at(D1, 14, 0), "SPY", 1.0, "trend"),
        fill(5, Intent.SELL_SHORT, 1, 3.10, at(D1, 12, 0), QQQ_CALL, 0.65),
        fill(6, Intent.BUY_TO_COVER, 1, 2.60, at(D1, 15, 0), QQQ_CALL, 0.65),
        fill(7, Intent.BUY, 3, 1.20, at(D2, 10, 0), PUT, 1.95),
        fill(8, Intent.SELL, 3, 0.0, at(D2, 16, 0), PUT),
    ]


def trade(days: dict[int, dict[str, Any]], day: Any, symbol: str) -> dict[str, Any]:
    return next(t for t in days[day_unix(day, NY)]["trades"] if t["symbol"] == symbol)


@pytest.mark.parametrize("mode", ["one file", "day by day"])
async def test_option_trades_match_tradenotes_import_and_carry_dollar_pnl(
    mode: str,
    redis: Redis,
    tradenote: TradeNoteServer,
    journal_user: tuple[dict[str, Any], JournalWorker],
) -> None:
    ours, theirs = await run_oracle(redis, tradenote, journal_user, option_fills(), mode)
    assert len(ours) == 2
    found = [d for day in sorted(ours) for d in differences(ours[day], theirs[day], f"[{day}]")]
    assert [d for d in found if not intended(d, set())] == [], "\n".join(found)

    for days in (ours, theirs):  # the same in the journal's documents and TradeNote's import
        call = trade(days, D1, CALL)
        assert (call["type"], call["symbolOriginal"], call["strategy"]) == ("call", CALL, "long")
        assert call["id"].endswith(f"_{CALL}_call_B")
        assert call["grossProceeds"] == pytest.approx(150.0)
        assert call["netProceeds"] == pytest.approx(148.70)
        assert call["grossSharePL"] == pytest.approx(75.0)
        written = trade(days, D1, QQQ_CALL)
        assert (written["type"], written["strategy"]) == ("call", "short")
        assert written["grossProceeds"] == pytest.approx(50.0)
        assert trade(days, D1, "SPY")["type"] == "stock"
        put = trade(days, D2, PUT)
        assert put["type"] == "put" and put["grossStatus"] == "loss"
        assert put["grossProceeds"] == pytest.approx(-360.0)  # the whole premium
        assert put["netProceeds"] == pytest.approx(-361.95)
        assert put["exitPrice"] == 0
        day2 = days[day_unix(D2, NY)]
        assert day2["blotter"][PUT]["type"] == "put"
        assert day2["executions"][1]["price"] == 0 and day2["executions"][1]["grossProceeds"] == 0
        pnl1 = days[day_unix(D1, NY)]["pAndL"]
        assert pnl1["grossProceeds"] == pytest.approx(150.0 + 25.0 + 50.0)
        assert pnl1["commission"] == pytest.approx(1.3 + 2.0 + 1.3)

    # our analytics report the same dollars, and group them
    total = (await analytics(redis, start=D1, end=D2))["total"]
    assert total["gross_pnl"] == pytest.approx(sum(d["pAndL"]["grossProceeds"] for d in
                                                   ours.values()))  # fmt: skip
    assert total["total_pnl"] == pytest.approx(sum(d["pAndL"]["netProceeds"] for d in
                                                   ours.values()))  # fmt: skip
    spy, qqq = total["by_underlying"]["SPY"], total["by_underlying"]["QQQ"]
    assert spy["symbols"] == ["SPY", CALL, PUT]
    assert spy["gross_pnl"] == pytest.approx(150.0 + 25.0 - 360.0)
    assert (spy["trades"], spy["wins"], spy["losses"]) == (3, 2, 1)
    assert qqq["gross_pnl"] == pytest.approx(50.0) and qqq["symbols"] == [QQQ_CALL]
    wheel, trend = total["by_strategy"]["wheel"], total["by_strategy"]["trend"]
    assert wheel["gross_pnl"] == pytest.approx(150.0 + 50.0 - 360.0) and wheel["trades"] == 3
    assert trend["gross_pnl"] == pytest.approx(25.0) and trend["commissions"] == 2.0
    for key in ("by_underlying", "by_strategy"):
        assert sum(g["total_pnl"] for g in total[key].values()) == pytest.approx(total["total_pnl"])


async def test_journal_export_csv_imports_into_tradenote_with_option_pnl(
    redis: Redis, redis_srv: Any, tradenote: TradeNoteServer
) -> None:
    """``trader-ops journal export --date`` (the real CLI) writes rows TradeNote's own
    Template importer turns into call/put trades with the right dollars."""
    for f in option_fills():
        await redis.xadd(Keys.FILLS_STREAM, {"fill": f.model_dump_json()})
    env = {**os.environ, "TRADEROPS_REDIS_URL": redis_srv.url, "TRADEROPS_LOG_LEVEL": "WARNING"}
    cmd = [sys.executable, "-c", "from app.journal.cli import journal_app; journal_app()", "export"]
    texts = []
    for day in (D1, D2):
        done = subprocess.run([*cmd, "--date", day.isoformat()], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr
        texts.append(done.stdout)
    assert [line.split(",")[4] for line in texts[0].splitlines()[1:]] == [
        "call", "stock", "call", "call", "stock", "call",
    ]  # fmt: skip
    assert ",put,S,SPY261218P00550000,3,0,16:00:00,0,0,0,0,0,0,0,0,0,,,wheel" in texts[1]
    user = tradenote.register(f"export-{secrets.token_hex(4)}@example.test", secrets.token_hex(8))
    key = tradenote.generate_api_key(user)
    for text in texts:
        tradenote.import_csv(key, text)
    days = {d["dateUnix"]: d for d in tradenote.day_documents(user)}
    assert trade(days, D1, CALL)["grossProceeds"] == pytest.approx(150.0)
    assert trade(days, D1, CALL)["type"] == "call"
    assert trade(days, D1, QQQ_CALL)["netProceeds"] == pytest.approx(48.70)
    assert trade(days, D2, PUT)["type"] == "put"
    assert trade(days, D2, PUT)["netProceeds"] == pytest.approx(-361.95)
