"""`trader-ops backtest` as a user meets it: the README's command, its files, its errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
JOB = ROOT / "deployment" / "kairos" / "jobs" / "momentum.yaml"
CLI = [sys.executable, "-m", "app.cli"]


def backtest(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEROPS_")}
    return subprocess.run(
        [*CLI, "backtest", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )


def test_two_runs_write_the_same_files(tmp_path: Path) -> None:
    for out in ("a", "b"):
        done = backtest(
            str(JOB), "--from", "2026-11-02", "--to", "2026-11-03", "--out", out, cwd=tmp_path
        )
        assert done.returncode == 0, done.stderr
        assert "runs" in done.stdout and "net P&L" in done.stdout
        assert "ETA" in done.stderr  # the progress bar
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert {"summary.json", "orders.csv", "fills.csv", "equity.csv"} <= set(names)
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["nope.yaml", "--from", "2026-11-02", "--to", "2026-11-03"],
            "nope.yaml: no such job file",
        ),
        (
            [str(JOB), "--from", "2026-13-02", "--to", "2026-11-03"],
            "--from '2026-13-02' is not a date",
        ),
        ([str(JOB), "--from", "2026-11-05", "--to", "2026-11-03"], "is before --from"),
        (
            [str(JOB), "--from", "2026-11-02", "--to", "2026-11-03", "--journal"],
            "--journal: the journal needs TRADEROPS_TRADENOTE_URL",
        ),
    ],
)
def test_what_cannot_be_used_is_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    done = backtest(*args, cwd=tmp_path)
    assert done.returncode == 2
    assert message in done.stderr and done.stderr.count("\n") == 1, done.stderr


def test_without_out_a_run_goes_to_the_backtest_dir(tmp_path: Path) -> None:
    """The directory the console lists: <backtest_dir>/<jobs>-<from>-<to>."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEROPS_")}
    env.update(TRADEROPS_BACKTEST_DIR=str(tmp_path / "runs"), PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [*CLI, "backtest", str(JOB), "--from", "2026-11-02", "--to", "2026-11-02", "--quiet"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    run = tmp_path / "runs" / "momentum-2026-11-02-2026-11-02"
    assert {"summary.json", "report.html", "fills.csv"} <= {p.name for p in run.iterdir()}
    assert f"files in {run}/" in done.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]  # nothing in the cwd
