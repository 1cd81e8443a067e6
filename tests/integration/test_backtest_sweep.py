"""``trader-ops backtest --grid``: the same files byte for byte whatever the parallelism
(in this process, a pool of 2, Dask's local cluster), and one-line errors before any run.

Each combination starts its own redis-server, so these need redis-server installed.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import require_binary

ROOT = Path(__file__).resolve().parents[2]
JOB = """\
name: momentum
schedule: "*/5 * * * 1-5"
calendar: XNYS
session: regular
strategy: momentum
symbols: [AAPL, AMD, TSLA]
parameters:
  resolution: "5"
  history_bars: 150
risk:
  position_size: 5%
  stop_loss: 3%
  take_profit: 6%
  max_positions: 3
"""
GRID = ["--grid", "rsi_oversold=25,35", "--grid", "volume_multiplier=1.2,50"]

pytestmark = [pytest.mark.integration]


@pytest.fixture(autouse=True)
def _redis_server() -> None:
    """Every run starts a redis-server: missing, it fails under CI (skips locally)."""
    require_binary("redis-server")


def backtest(tmp: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    job = tmp / "momentum.yaml"
    job.write_text(JOB)
    argv = [sys.executable, "-c", "from app.cli import main; main()", "backtest", str(job)]
    argv += ["--from", "2025-03-03", "--to", "2025-03-03", "--quiet", *args]
    return subprocess.run(
        argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def serial(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    tmp = tmp_path_factory.mktemp("serial")
    done = backtest(tmp, *GRID, "--workers", "1", "--out", str(tmp / "out"))
    assert done.returncode == 0, done.stderr
    return tree(tmp / "out")


def test_sweep_files(serial: dict[str, bytes]) -> None:
    rows = list(csv.DictReader(serial["sweep.csv"].decode().splitlines()))
    assert len(rows) == 4
    assert [r["rank"] for r in rows] == ["1", "2", "3", "4"]
    pnl = [float(r["net_pnl"]) for r in rows]
    assert pnl == sorted(pnl, reverse=True)  # best first
    for r in rows:
        for name in ("summary.json", "orders.csv", "fills.csv", "equity.csv"):
            assert f"{r['dir']}/{name}" in serial
    keys = {r["dir"] for r in rows}
    assert "runs/rsi_oversold=25,volume_multiplier=1.2" in keys
    # the parameters reached the strategy: the runs differ
    assert len({serial[f"{k}/orders.csv"] for k in keys}) > 1


def test_two_workers_same_bytes(serial: dict[str, bytes], tmp_path: Path) -> None:
    done = backtest(tmp_path, *GRID, "--workers", "2", "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert tree(tmp_path / "out") == serial


def test_dask_local_cluster_same_bytes(serial: dict[str, bytes], tmp_path: Path) -> None:
    """Dask's embedded LocalCluster (2 worker processes): same bytes as in-process (Dask is
    a dependency: a missing install fails here)."""
    out = tmp_path / "out"
    done = backtest(tmp_path, *GRID, "--scheduler", "local", "--workers", "2", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert tree(out) == serial


def test_rank_ascending_drawdown(serial: dict[str, bytes], tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = backtest(tmp_path, *GRID, "--workers", "2", "--rank", "max_drawdown", "--out", str(out))
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader((out / "sweep.csv").read_text().splitlines()))
    dd = [float(r["max_drawdown"]) for r in rows]
    assert dd == sorted(dd)  # a drawdown ranks lowest first
    assert list(rows[0])[:4] == ["rank", "rsi_oversold", "volume_multiplier", "max_drawdown"]
    runs = {k: v for k, v in tree(out).items() if k != "sweep.csv"}
    assert runs == {k: v for k, v in serial.items() if k != "sweep.csv"}  # only the order


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--grid", "nope=1,2"], "--grid nope: no job has this parameter"),
        (["--grid", "rsi_period=1"], "--grid rsi_period=1:"),
        (["--grid", "rsi_oversold=abc"], "--grid rsi_oversold=abc:"),
        (["--grid", "rsi_oversold"], "expected NAME=VALUE"),
        (["--grid", "rsi_oversold=80"], "rsi_oversold must be below rsi_overbought"),
        (["--grid", "rsi_oversold=20", "--rank", "colour"], "--rank 'colour'"),
        (["--workers", "2"], "give --grid"),
    ],
)
def test_bad_grid_one_line_exit_2(tmp_path: Path, args: list[str], says: str) -> None:
    out = tmp_path / "out"
    done = backtest(tmp_path, *args, "--out", str(out), timeout=60)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("backtest: ") and says in lines[0], lines[0]
    assert not out.exists()  # nothing ran
