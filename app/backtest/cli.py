"""``trader-ops backtest``: kairos jobs over a date range through the live path."""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import UTC, date, datetime
from datetime import time as dtime
from pathlib import Path
from typing import Annotated, NoReturn

import typer


def fail(message: str) -> NoReturn:
    """One line on stderr, exit status 2 (a job, a file or a date that cannot be used)."""
    typer.echo(f"backtest: {message}", err=True)
    raise typer.Exit(2)


def _day(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(f"{option} {value!r} is not a date (YYYY-MM-DD)")


class Bar:
    """A one-line progress bar on stderr: runs done, runs per second, ETA."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.last = 0.0

    def __call__(self, done: int, total: int, when: datetime) -> None:
        now = time.monotonic()
        if done < total and now - self.last < 0.2:
            return
        self.last = now
        rate = done / max(now - self.t0, 1e-9)
        eta = (total - done) / rate if rate else 0.0
        width = 30
        filled = int(width * done / max(total, 1))
        sys.stderr.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} runs "
            f"{rate:,.0f}/s ETA {eta:,.0f}s  {when:%Y-%m-%d %H:%M}"
        )
        if done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()


# A sweep's options (app/backtest/sweep.py says how each combination runs and is ranked).
GRID = typer.Option("--grid", help="NAME=A,B,C (repeatable): every combination of parameters")
WORKERS = typer.Option("--workers", help="sweep: processes (default: every core)")
SCHEDULER = typer.Option("--scheduler", help="sweep on Dask: local, or tcp://HOST:8786")
RANK = typer.Option("--rank", help="sweep: METRIC[:asc|:desc] of summary.json (net_pnl)")


def backtest_command(
    jobs: Annotated[list[Path], typer.Argument(help="kairos job files (YAML)")],
    start: Annotated[str, typer.Option("--from", help="first day, YYYY-MM-DD")],
    end: Annotated[str, typer.Option("--to", help="last day, YYYY-MM-DD (included)")],
    out: Annotated[Path, typer.Option("--out", help="directory for the result files")] = Path(
        "backtest-out"
    ),
    risk: Annotated[
        Path | None, typer.Option("--risk", help="risk limits file (default: the defaults)")
    ] = None,
    cash: Annotated[float, typer.Option("--cash", help="starting cash")] = 100_000.0,
    seed: Annotated[int, typer.Option("--seed", help="the simulated feed's seed")] = 42,
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress bar")] = False,
    grid: Annotated[list[str] | None, GRID] = None,
    workers: Annotated[int | None, WORKERS] = None,
    scheduler: Annotated[str | None, SCHEDULER] = None,
    rank: Annotated[str | None, RANK] = None,
) -> None:
    """Run kairos jobs over history on the simulated feed, through the same planner, risk
    checks and paper fills as live; write summary.json, orders.csv, fills.csv, equity.csv."""
    from app.backtest.results import summary, write
    from app.backtest.runner import BacktestConfig, run_backtest
    from app.execution.config import load_execution_config
    from app.kairos.jobs import JobFileError, load_job_file
    from app.risk.limits import RiskConfigError

    first, last = _day(start, "--from"), _day(end, "--to")
    if last < first:
        fail(f"--to {last} is before --from {first}")
    loaded = []
    for path in jobs:
        if not path.is_file():
            fail(f"{path}: no such job file")
        try:
            loaded.append(load_job_file(path))
        except JobFileError as exc:
            fail("; ".join(exc.lines()))
    try:
        limits, sizing = load_execution_config(risk)
    except RiskConfigError as exc:
        fail(str(exc))
    config = BacktestConfig(
        jobs=loaded,
        start=datetime.combine(first, dtime(0), UTC),
        end=datetime.combine(last, dtime(23, 59, 59), UTC),
        limits=limits,
        sizing=sizing,
        cash=cash,
        seed=seed,
        name="+".join(j.name for j in loaded),
    )
    if grid or workers is not None or scheduler is not None or rank is not None:
        from app.backtest.sweep import sweep_command

        return sweep_command(
            config, grid, out=out, workers=workers, scheduler=scheduler, rank=rank, quiet=quiet
        )
    result = asyncio.run(run_backtest(config, progress=None if quiet else Bar()))
    write(result, out)
    s = summary(result)
    typer.echo(
        f"{s['runs']} runs, {s['alerts']} alerts, {s['fills']} fills; net P&L "
        f"${s['net_pnl']:,.2f} ({s['return_pct']:+.2f}%), max drawdown ${s['max_drawdown']:,.2f}; "
        f"files in {out}/"
    )
