"""A short backtest of the momentum job, run twice: every output file is the same byte for
byte, report.html loads nothing from outside, and fills_tradenote.csv is TradeNote's
Template CSV of the run's fills."""

from __future__ import annotations

import csv
import io
import re
import shlex
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from app.backtest.results import write
from app.backtest.runner import BacktestConfig, run_backtest
from app.journal.ledger import TEMPLATE_COLUMNS
from app.kairos.jobs import load_job_file

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
JOB = ROOT / "deployment" / "kairos" / "jobs" / "momentum.yaml"
FILES = {
    "summary.json",
    "orders.csv",
    "fills.csv",
    "fills_tradenote.csv",
    "equity.csv",
    "report.html",
}


async def run(out: Path) -> None:
    job = load_job_file(JOB)
    config = BacktestConfig(
        jobs=[job],
        start=datetime(2026, 11, 2, tzinfo=UTC),
        end=datetime(2026, 11, 4, 23, 59, 59, tzinfo=UTC),
        name=job.name,
    )
    write(await run_backtest(config), out)


async def test_two_runs_write_the_same_files(tmp_path: Path) -> None:
    await run(tmp_path / "a")
    await run(tmp_path / "b")
    names = {p.name for p in (tmp_path / "a").iterdir()}
    assert names == FILES
    for name in sorted(FILES):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name

    page = (tmp_path / "a" / "report.html").read_text()
    assert not re.search(r"https?://", page), "report.html refers to something outside it"
    assert not re.search(r"<(script|link|img|iframe)\b", page)
    assert page.count("<svg") == 2 and 'class="heat"' in page

    summary = orjson.loads((tmp_path / "a" / "summary.json").read_bytes())
    m = summary["metrics"]
    assert summary["fills"] > 0 and m["fills"] == summary["fills"]
    assert m["sessions"] == 3
    for key in ("cagr", "sharpe", "sortino", "max_drawdown", "exposure", "profit_factor"):
        assert key in m
    assert m["net_pnl"] == summary["net_pnl"]
    assert m["trades"] == summary["analytics"]["trades"]
    assert 0.0 <= m["exposure"] <= 1.0

    fills = list(csv.DictReader(io.StringIO((tmp_path / "a" / "fills.csv").read_text())))
    rows = list(csv.reader(io.StringIO((tmp_path / "a" / "fills_tradenote.csv").read_text())))
    assert rows[0] == TEMPLATE_COLUMNS
    assert len(rows) - 1 == len(fills)
    assert {r[0] for r in rows[1:]} == {"backtest-momentum"}
    assert [r[6] for r in rows[1:]] == [f["symbol"] for f in fills]


def test_the_documented_command_runs(tmp_path: Path) -> None:
    """The README's and docs/BACKTEST.md's backtest command, as written (``--out`` moved
    into the test's directory), gives every file."""
    commands = set()
    for doc in ("README.md", "docs/BACKTEST.md"):
        text = (ROOT / doc).read_text()
        found = re.findall(r"^\.venv/bin/trader-ops backtest .*$", text, flags=re.M)
        assert found, f"{doc} lost its backtest command"
        commands.update(found)
    assert len(commands) == 1, commands
    argv = shlex.split(commands.pop())
    argv[argv.index("--out") + 1] = str(tmp_path / "out")
    binary = Path(sys.executable).parent / Path(argv[0]).name  # (this venv's, as make install's)
    done = subprocess.run(
        [str(binary), *argv[1:], "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "runs" in done.stdout and "fills" in done.stdout
    assert {p.name for p in (tmp_path / "out").iterdir()} == FILES
