"""`--journal`: a backtest's fills in the real TradeNote (parse-server on PostgreSQL) as an
account of their own, the same executions and P&L as the run's own files, once."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.backtest.journal import account_name, journal_fills
from app.backtest.runner import BacktestConfig, BacktestResult, Session, run_backtest
from app.journal.analytics import realise
from app.kairos.jobs import load_job_file
from tests.apps import settings_for
from tests.journal_servers import ParseServer, tradenote_srv, tradenote_user
from tests.servers import RedisServer

__all__ = ["tradenote_srv", "tradenote_user"]  # fixtures

ROOT = Path(__file__).resolve().parents[2]


async def test_a_run_becomes_its_own_tradenote_account(
    redis_srv: RedisServer, tradenote_srv: ParseServer, tradenote_user: dict[str, Any]
) -> None:
    settings = settings_for(
        redis_srv.url,
        tradenote_url=tradenote_srv.base_url,
        tradenote_app_id=tradenote_srv.app_id,
        tradenote_master_key=tradenote_srv.master_key,
        tradenote_username=tradenote_user["username"],
    )
    written: list[Any] = []

    async def after(session: Session, result: BacktestResult) -> None:
        written.append(await journal_fills(settings, session.redis, result.fills, "mom"))
        written.append(await journal_fills(settings, session.redis, result.fills, "mom"))

    config = BacktestConfig(
        jobs=[load_job_file(ROOT / "deployment" / "kairos" / "jobs" / "momentum.yaml")],
        start=datetime(2026, 11, 2, tzinfo=UTC),
        end=datetime(2026, 11, 4, tzinfo=UTC),
        name="mom",
    )
    result = await run_backtest(config, after=after)
    assert result.fills
    first, again = written
    assert first.executions_added == len(result.fills) and not first.rejected
    assert again.executions_added == 0  # the same run twice: nothing added
    session = tradenote_srv.login(tradenote_user["username"], tradenote_user["password"])
    docs = tradenote_srv.ui_trades(session, 0, 2**31)
    executions = [e for d in docs for e in d["executions"]]
    assert len(executions) == len(result.fills)
    assert {e["account"] for e in executions} == {account_name("mom")}
    closed_pnl = round(sum(t["netProceeds"] for d in docs for t in d["trades"]), 2)
    closed = [t for t in realise(result.fills).trips if t.exit_day is not None]
    assert closed_pnl == round(sum(t.net for t in closed), 2)  # TradeNote's P&L is ours
