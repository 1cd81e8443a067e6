"""``trader-ops backtest``: kairos jobs over a date range through the live path."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from datetime import time as dtime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer


def fail(message: str) -> NoReturn:
    """One line on stderr, exit status 2 (a job, a file or a date that cannot be used)."""
    typer.echo(f"backtest: {message}", err=True)
    raise typer.Exit(2)


RUN_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9._=,+-]")


def default_out(name: str, first: date, last: date) -> Path:
    """``<backtest_dir>/<name>-<from>-<to>``: where a run goes without ``--out`` (the
    directory the console lists; ``TRADEROPS_BACKTEST_DIR``, default
    ``<data_dir>/backtests``). The settings are read only here, when needed."""
    from app.config import ConfigError, load_settings

    try:
        base = load_settings().effective_backtest_dir
    except ConfigError as exc:
        fail(f"settings: {exc} (or give --out)")
    return base / f"{RUN_NAME_UNSAFE.sub('_', name)}-{first.isoformat()}-{last.isoformat()}"


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


def _journal_step(run: str) -> tuple[Any, list[str]]:
    """``--journal``: the settings checked now (a missing TradeNote setting is a one-line
    error before the run), the write done at the end of the run, its outcome in ``lines``."""
    from app.backtest.journal import account_name, journal_fills
    from app.cli_support import settings_or_exit
    from app.config import ConfigError
    from app.journal.service import journal_config, tradenote_client

    settings = settings_or_exit(discover_redis=False)
    try:
        journal_config(settings)
        tradenote_client(settings)
    except ConfigError as exc:
        fail(f"--journal: {exc}")
    lines: list[str] = []

    async def after(session: Any, result: Any) -> None:
        done = await journal_fills(settings, session.redis, result.fills, run)
        lines.append(
            f"journal: {done.executions_added} execution(s) on {len(done.days_written)} day(s) "
            f"into TradeNote account {account_name(run)}"
            + (f"; {len(done.rejected)} day(s) refused" if done.rejected else "")
        )

    return after, lines


def _tradier_bars(jobs: list[Any], first: date, last: date) -> Path:
    """Tradier's bars for the jobs' symbols over the range (and their warm-up), cached as
    bar files; the directory ``--bars`` would be given."""
    from app.backtest.tradier_bars import cache_bars
    from app.cli_support import settings_or_exit
    from app.feeds.base import FeedError
    from app.feeds.tradier import TradierFeed

    settings = settings_or_exit(discover_redis=False)
    directory = settings.data_dir / "bars" / "tradier"
    start = int(datetime.combine(first, dtime(0), UTC).timestamp())
    end = int(datetime.combine(last, dtime(23, 59, 59), UTC).timestamp()) + 1

    async def fetch() -> list[str]:
        feed = TradierFeed.from_settings(settings)
        await feed.start()
        try:
            done: list[str] = []
            for job in jobs:
                needs = job.strategy.needs()
                if needs.resolution is None:
                    continue
                warmup = max(needs.bars * needs.resolution.seconds * 6, 10 * 86_400)
                done += await cache_bars(
                    feed, job.spec.symbols, needs.resolution, start - warmup, end, directory
                )
            return done
        finally:
            await feed.close()

    try:
        fetched = asyncio.run(fetch())
    except FeedError as exc:
        fail(f"--tradier: {exc}")
    typer.echo(
        f"Tradier bars: {len(fetched)} symbol(s) fetched, the rest from {directory}", err=True
    )
    return directory


def backtest_command(
    jobs: Annotated[list[Path], typer.Argument(help="kairos job files (YAML)")],
    start: Annotated[str, typer.Option("--from", help="first day, YYYY-MM-DD")],
    end: Annotated[str, typer.Option("--to", help="last day, YYYY-MM-DD (included)")],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="directory for the result files (default: <backtest_dir>/<jobs>-<from>-<to>)",
        ),
    ] = None,
    risk: Annotated[
        Path | None, typer.Option("--risk", help="risk limits file (default: the defaults)")
    ] = None,
    cash: Annotated[float, typer.Option("--cash", help="starting cash")] = 100_000.0,
    seed: Annotated[int, typer.Option("--seed", help="the simulated feed's seed")] = 42,
    bars: Annotated[
        Path | None,
        typer.Option("--bars", help="bar files SYMBOL_RESOLUTION.csv (default: simulated)"),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress bar")] = False,
    tradier: Annotated[
        bool,
        typer.Option(
            "--tradier",
            help="bars from Tradier's history (TRADEROPS_TRADIER_TOKEN), cached in "
            "<data_dir>/bars/tradier",
        ),
    ] = False,
    journal: Annotated[
        bool,
        typer.Option(
            "--journal",
            help="also write the run into TradeNote as account backtest-<name> "
            "(the TRADEROPS_TRADENOTE_* settings)",
        ),
    ] = False,
    grid: Annotated[list[str] | None, GRID] = None,
    workers: Annotated[int | None, WORKERS] = None,
    scheduler: Annotated[str | None, SCHEDULER] = None,
    rank: Annotated[str | None, RANK] = None,
) -> None:
    """Run kairos jobs over history on the simulated feed, through the same planner, risk
    checks and paper fills as live; write summary.json, orders.csv, fills.csv, equity.csv."""
    from app.backtest.bars import BarFileError
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
    if tradier:
        if bars is not None:
            fail("--tradier and --bars: give one source of bars")
        bars = _tradier_bars(loaded, first, last)
    config = BacktestConfig(
        jobs=loaded,
        start=datetime.combine(first, dtime(0), UTC),
        end=datetime.combine(last, dtime(23, 59, 59), UTC),
        limits=limits,
        sizing=sizing,
        cash=cash,
        seed=seed,
        bars=bars,
        name="+".join(j.name for j in loaded),
    )
    if out is None:
        out = default_out(config.name, first, last)
    if grid or workers is not None or scheduler is not None or rank is not None:
        from app.backtest.sweep import sweep_command

        return sweep_command(
            config, grid, out=out, workers=workers, scheduler=scheduler, rank=rank, quiet=quiet
        )
    after, written = _journal_step(config.name) if journal else (None, [])
    try:
        result = asyncio.run(run_backtest(config, progress=None if quiet else Bar(), after=after))
    except BarFileError as exc:
        fail(str(exc))
    write(result, out)
    s = summary(result)
    typer.echo(
        f"{s['runs']} runs, {s['alerts']} alerts, {s['fills']} fills; net P&L "
        f"${s['net_pnl']:,.2f} ({s['return_pct']:+.2f}%), max drawdown ${s['metrics']['max_drawdown']:,.2f}; "
        f"files in {out}/"
    )
    for line in written:
        typer.echo(line)


def _window(start: str | None, end: str | None) -> tuple[datetime | None, datetime | None]:
    first = _day(start, "--from") if start else None
    last = _day(end, "--to") if end else None
    if first and last and last < first:
        fail(f"--to {last} is before --from {first}")
    return (
        datetime.combine(first, dtime(0), UTC) if first else None,
        datetime.combine(last, dtime(23, 59, 59), UTC) if last else None,
    )


def _log_alerts(
    path: Path, start: datetime | None, end: datetime | None
) -> tuple[list[Any], list[tuple[str, float | None, str]]]:
    """The export's alerts in the window, and its rows that are not alerts."""
    from app.backtest.replay import prepare
    from app.backtest.tvlog import TvLogError, load_log

    if not path.is_file():
        fail(f"{path}: no such file")
    try:
        rows, bad = load_log(path)
    except TvLogError as exc:
        fail(f"{path}: {exc}" if str(path) not in str(exc) else str(exc))
    rejected = [(f"line {r.line}", r.time.timestamp() if r.time else None, r.reason) for r in bad]
    alerts = []
    for row in rows:
        if (start and row.time < start) or (end and row.time > end):
            continue
        try:
            alerts.append(prepare(row.time.timestamp(), row.body, f"line {row.line}"))
        except ValueError as exc:  # (tvlog took it: kept for safety)
            rejected.append((f"line {row.line}", row.time.timestamp(), str(exc)))
    return alerts, rejected


def _replay_csv(run: Any) -> bytes:
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        ["time", "source", "alert_id", "ticker", "action", "status", "check", "quantity",
         "order_id", "reason"]
    )  # fmt: skip
    lines = [
        (
            r.alert.time,
            r.alert.source,
            [r.alert.alert_id, r.alert.ticker, r.alert.action]
            + [(r.decision or {}).get(k) for k in ("status", "check", "quantity", "order_id")]
            + [(r.decision or {}).get("reason") or r.error],
        )
        for r in run.rows
    ]
    lines += [(t, s, ["", "", "", "rejected", "", "", "", why]) for s, t, why in run.rejected]
    for t, source, rest in sorted(lines, key=lambda x: (x[0] or 0.0, x[1])):
        if rest[3] is None:
            rest[3] = "refused"
        writer.writerow([t, source, *rest])
    return out.getvalue().encode()


def replay_command(
    alerts: Annotated[
        str,
        typer.Argument(
            help="TradingView's alert log export (CSV), or redis://... to replay the "
            "--account's own stored alerts (then --from and --to are required)"
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="directory for the result files (default: <backtest_dir>/replay-<source>-<from>-<to>)",
        ),
    ] = None,
    start: Annotated[str | None, typer.Option("--from", help="first day, YYYY-MM-DD")] = None,
    end: Annotated[str | None, typer.Option("--to", help="last day, YYYY-MM-DD")] = None,
    risk: Annotated[
        Path | None, typer.Option("--risk", help="risk limits file (default: the defaults)")
    ] = None,
    compare: Annotated[
        str | None,
        typer.Option("--compare", help="the live Redis (redis://...): set what it did beside"),
    ] = None,
    account: Annotated[str, typer.Option("--account", help="the live account")] = "default",
    cash: Annotated[float, typer.Option("--cash", help="starting cash")] = 100_000.0,
    seed: Annotated[int, typer.Option("--seed", help="the simulated feed's seed")] = 42,
) -> None:
    """Replay alerts (TradingView's alert log, or an account's stored alerts) through the
    live planner, risk checks and paper fills at their times; with --compare, beside what
    the live stack did. Writes replay.csv, summary.json, orders.csv, fills.csv, equity.csv
    (and compare.json, compare.csv)."""
    asyncio.run(_replay(alerts, out, start, end, risk, compare, account, cash, seed))


async def _replay(
    source: str,
    out: Path | None,
    start: str | None,
    end: str | None,
    risk: Path | None,
    compare_url: str | None,
    account: str,
    cash: float,
    seed: int,
) -> None:
    import orjson

    from app.backtest.replay import compare, compare_csv, live_record, replay, stored_alerts
    from app.backtest.results import write
    from app.backtest.runner import BacktestConfig
    from app.execution.config import load_execution_config
    from app.risk.limits import RiskConfigError

    first, last = _window(start, end)
    try:
        limits, sizing = load_execution_config(risk)
    except RiskConfigError as exc:
        fail(str(exc))
    if compare_url is not None:  # reachable, before the replay
        async with _redis(compare_url):
            pass
    if source.startswith(("redis://", "rediss://", "unix://")):
        if first is None or last is None:
            fail("replaying stored alerts needs --from and --to")
        rejected: list[tuple[str, float | None, str]] = []
        async with _redis(source) as redis:
            alerts = await stored_alerts(redis, account, first.timestamp(), last.timestamp())
    else:
        alerts, rejected = _log_alerts(Path(source), first, last)
    if not alerts:
        fail(f"{source}: no alert to replay" + (" in --from/--to" if first or last else ""))
    t0, t1 = min(a.time for a in alerts), max(a.time for a in alerts)
    config = BacktestConfig(
        jobs=[],
        start=first or datetime.combine(datetime.fromtimestamp(t0, UTC).date(), dtime(0), UTC),
        end=last or datetime.fromtimestamp(t1, UTC),
        limits=limits,
        sizing=sizing,
        cash=cash,
        seed=seed,
        name=f"replay-{Path(source).stem if '://' not in source else account}",
    )
    if out is None:
        out = default_out(config.name, config.start.date(), config.end.date())
    run = await replay(config, alerts)
    run.rejected = rejected
    write(run.result, out)
    (out / "replay.csv").write_bytes(_replay_csv(run))
    for s, _, why in rejected:
        typer.echo(f"replay: skipped {s}: {why}", err=True)
    decided = Counter(r.decision["status"] if r.decision else "refused" for r in run.rows)
    line = ", ".join(f"{n} {k}" for k, n in sorted(decided.items()))
    typer.echo(f"{len(run.rows)} alerts replayed ({line}), {len(rejected)} rows skipped")
    if compare_url is not None:
        async with _redis(compare_url) as redis:
            ids = [r.alert.alert_id for r in run.rows]
            live = await live_record(redis, account, ids, t0, t1)
        report = {"account": account, **compare(run, live)}
        opts = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
        (out / "compare.json").write_bytes(orjson.dumps(report, option=opts))
        (out / "compare.csv").write_bytes(compare_csv(report))
        counts = ", ".join(f"{n} {k}" for k, n in report["counts"].items()) or "none"
        typer.echo(
            f"compared with account {account}: {report['received_live']} received live; "
            f"differences: {counts}; P&L difference ${report['pnl']['difference']:,.2f}"
        )
    typer.echo(f"files in {out}/")


@contextlib.asynccontextmanager
async def _redis(url: str) -> AsyncIterator[Any]:
    """A live Redis, or a one-line error naming it (without its password)."""
    from redis.asyncio import Redis
    from redis.exceptions import RedisError

    shown = re.sub(r"//[^@/]*@", "//***@", url)
    try:
        redis = Redis.from_url(url)
        await redis.ping()
    except (RedisError, OSError, ValueError) as exc:
        fail(f"{shown}: cannot reach Redis: {exc}")
    try:
        yield redis
    finally:
        await redis.aclose()
