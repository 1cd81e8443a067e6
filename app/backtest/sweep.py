"""Parameter sweeps: ``trader-ops backtest JOB.yml --grid NAME=A,B,C [--grid ...]``.

Every combination of the grid's values is one independent backtest (its own Redis, its
own feed and engine), so combinations can run anywhere and in any order:

* ``--workers N``: a local process pool of N processes (default: every core); ``--workers
  1`` runs them one after another in this process;
* ``--scheduler local``: an embedded Dask ``LocalCluster`` of ``--workers`` processes;
* ``--scheduler tcp://HOST:8786``: an existing Dask cluster (its workers need trader-ops
  and redis-server installed; they send back the files, they write nothing shared).

Dask is imported only with ``--scheduler``. A grid value is read as a YAML scalar (``30``,
``1.5``, ``true``); a parameter that takes text gets the text when the scalar is refused
(``resolution=5,15``). A parameter no job knows, or a value its strategy refuses, is a
one-line error before anything runs.

``--rank METRIC[:asc|:desc]`` orders ``sweep.csv`` (default ``net_pnl``): a key of
summary.json, dotted for the analytics (``analytics.sharpe``); best first, which is the
highest except for drawdowns (lowest first) unless ``:asc``/``:desc`` says; a missing value
(``null``) ranks last; ties keep the grid's order. Each run's files go to
``runs/NAME=VALUE,.../``. The files are the same byte for byte whatever the parallelism:
each run is deterministic, and nothing depends on the order runs finish in.
"""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from app.backtest.cli import fail
from app.backtest.results import summary, write
from app.backtest.runner import BacktestConfig, BacktestResult, run_backtest
from app.kairos.jobs import JobFileError, LoadedJob, parse_job

COLUMNS = [
    "net_pnl",
    "return_pct",
    "max_drawdown",
    "max_drawdown_pct",
    "analytics.sharpe",
    "analytics.profit_factor",
    "analytics.win_rate",
    "analytics.trades",
    "alerts",
    "orders",
    "fills",
    "runs",
]


@dataclass(frozen=True)
class Axis:
    """One ``--grid NAME=A,B,C``: the values as the jobs get them and as written."""

    name: str
    values: tuple[Any, ...]
    texts: tuple[str, ...]


@dataclass(frozen=True)
class Task:
    """One combination: picklable, so it runs in another process or on a Dask worker."""

    key: str  # NAME=VALUE,... (the run's directory)
    index: int  # position in the grid (ties in the ranking keep it)
    docs: tuple[tuple[dict[str, Any], str], ...]  # (job document, its path) per job
    config: BacktestConfig  # jobs left empty: built from docs where the task runs


def run_task(task: Task) -> tuple[str, dict[str, Any], dict[str, bytes]]:
    """Run one combination; its key, summary and files (name -> bytes)."""
    jobs = [parse_job(doc, Path(path)) for doc, path in task.docs]
    result: BacktestResult = asyncio.run(run_backtest(replace(task.config, jobs=jobs)))
    with tempfile.TemporaryDirectory(prefix="traderops-sweep-") as tmp:
        files = {p.name: p.read_bytes() for p in write(result, Path(tmp))}
    return task.key, summary(result), files


def known_parameters(job: LoadedJob) -> set[str] | None:
    """The strategy's parameter names; None when it takes any (a function strategy)."""
    params = getattr(job.strategy, "params", None)
    if isinstance(params, BaseModel):
        return set(type(params).model_fields)
    return None


def _with(doc: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    return {**doc, "parameters": {**(doc.get("parameters") or {}), **overrides}}


def _check(doc: dict[str, Any], path: Path, overrides: dict[str, Any]) -> str | None:
    """None if the job accepts ``overrides``, else why not (one line)."""
    try:
        parse_job(_with(doc, overrides), path)
    except JobFileError as exc:
        return "; ".join(exc.lines())
    return None


def parse_axis(text: str) -> tuple[str, list[str]]:
    name, sep, values = text.partition("=")
    name = name.strip()
    items = [v.strip() for v in values.split(",")]
    if not sep or not name or not all(items):
        fail(f"--grid {text!r}: expected NAME=VALUE[,VALUE...]")
    return name, items


def build_axes(grid: Sequence[str], jobs: Sequence[tuple[LoadedJob, dict[str, Any]]]) -> list[Axis]:
    """The grid's axes, each value checked against every job that takes the parameter."""
    axes: list[Axis] = []
    for text in grid:
        name, items = parse_axis(text)
        if any(a.name == name for a in axes):
            fail(f"--grid {name}: given twice (list its values in one --grid)")
        takers = [(j, d) for j, d in jobs if name in (known_parameters(j) or {name})]
        if not takers:
            known = sorted(set().union(*(known_parameters(j) or set() for j, _ in jobs)))
            fail(f"--grid {name}: no job has this parameter (known: {', '.join(known)})")
        values = []
        for item in items:
            scalar = yaml.safe_load(item)
            for candidate in (scalar, item):
                problems = [_check(d, j.path, {name: candidate}) for j, d in takers]
                if not any(problems):
                    values.append(candidate)
                    break
            else:
                why = next(p for p in problems if p)
                fail(f"--grid {name}={item}: {why}")
        axes.append(Axis(name, tuple(values), tuple(items)))
    return axes


def combinations(
    axes: Sequence[Axis], jobs: Sequence[tuple[LoadedJob, dict[str, Any]]], config: BacktestConfig
) -> list[Task]:
    """Every combination as a task, in grid order; one a job refuses is an error."""
    tasks = []
    picks = itertools.product(*(range(len(a.values)) for a in axes))
    for index, pick in enumerate(picks):
        key = ",".join(
            f"{a.name}={a.texts[i]}".replace("/", "_") for a, i in zip(axes, pick, strict=True)
        )
        docs = []
        for job, doc in jobs:
            names = known_parameters(job)
            over = {
                a.name: a.values[i]
                for a, i in zip(axes, pick, strict=True)
                if names is None or a.name in names
            }
            problem = _check(doc, job.path, over)
            if problem:
                fail(f"--grid combination {key}: {problem}")
            docs.append((_with(doc, over), str(job.path)))
        tasks.append(Task(key, index, tuple(docs), replace(config, jobs=[])))
    return tasks


def metric(s: dict[str, Any], name: str) -> Any:
    """A summary.json figure by dotted name; a bare name not at the top is the metrics
    block's (``max_drawdown`` is ``metrics.max_drawdown``)."""
    if "." not in name and name not in s:
        name = f"metrics.{name}"
    value: Any = s
    for part in name.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def parse_rank(text: str, config: BacktestConfig) -> tuple[str, bool]:
    """(metric, descending); the metric must be a number (or null) in summary.json."""
    name, _, order = text.partition(":")
    if order not in ("", "asc", "desc"):
        fail(f"--rank {text!r}: the order is asc or desc")
    numeric = list(numeric_keys(summary(BacktestResult("", config.start, config.end, config.cash))))
    if name not in numeric and f"metrics.{name}" not in numeric:
        fail(f"--rank {name!r}: not a numeric key of summary.json (one of {', '.join(numeric)})")
    descending = order == "desc" or (order == "" and "drawdown" not in name)
    return name, descending


def numeric_keys(s: dict[str, Any], prefix: str = "") -> Iterator[str]:
    """summary.json's keys that hold a number (or null), the analytics' and metrics' dotted."""
    for k, v in s.items():
        if isinstance(v, dict) and k in ("analytics", "metrics"):
            yield from numeric_keys(v, f"{k}.")
        elif v is None or (isinstance(v, int | float) and not isinstance(v, bool)):
            yield f"{prefix}{k}"


def rows(
    axes: Sequence[Axis],
    tasks: Sequence[Task],
    summaries: dict[str, dict[str, Any]],
    rank: str,
    descending: bool,
) -> list[list[Any]]:
    """sweep.csv: best first by ``rank`` (missing last), ties in grid order."""

    def order(task: Task) -> tuple[bool, float, int]:
        value = metric(summaries[task.key], rank)
        if value is None:
            return (True, 0.0, task.index)
        return (False, -value if descending else value, task.index)

    columns = [rank, *(c for c in COLUMNS if c != rank)]
    out: list[list[Any]] = [["rank", *(a.name for a in axes), *columns, "dir"]]
    for place, task in enumerate(sorted(tasks, key=order), 1):
        values = dict(part.split("=", 1) for part in task.key.split(","))
        s = summaries[task.key]
        out.append(
            [
                place,
                *(values[a.name] for a in axes),
                *(metric(s, c) for c in columns),
                f"runs/{task.key}",
            ]
        )
    return out


def _done(quiet: bool, done: int, total: int, key: str, s: dict[str, Any], rank: str) -> None:
    if not quiet:
        print(f"[{done}/{total}] {key}: {rank} {metric(s, rank)}", file=sys.stderr, flush=True)


def execute(
    tasks: Sequence[Task], workers: int, scheduler: str | None, quiet: bool, rank: str
) -> Iterator[tuple[str, dict[str, Any], dict[str, bytes]]]:
    """Each task's outcome as it completes (any order)."""
    if scheduler is not None:
        yield from _dask(tasks, workers, scheduler)
    elif workers <= 1:
        yield from map(run_task, tasks)
    else:
        with ProcessPoolExecutor(min(workers, len(tasks)), mp_context=get_context("spawn")) as pool:
            for future in as_completed([pool.submit(run_task, t) for t in tasks]):
                yield future.result()


def _dask(
    tasks: Sequence[Task], workers: int, scheduler: str
) -> Iterator[tuple[str, dict[str, Any], dict[str, bytes]]]:
    from dask.distributed import Client, LocalCluster
    from dask.distributed import as_completed as dask_completed

    cluster = None
    if scheduler == "local":
        cluster = LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=max(1, min(workers, len(tasks))),
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        )
    try:
        with Client(cluster if cluster is not None else scheduler) as client:  # type: ignore[no-untyped-call]
            futures = client.map(run_task, list(tasks), pure=False)
            for future in dask_completed(futures):  # type: ignore[no-untyped-call]
                yield future.result()
    finally:
        if cluster is not None:
            cluster.close()


def sweep_command(
    config: BacktestConfig,
    grid: Sequence[str] | None,
    *,
    out: Path,
    workers: int | None,
    scheduler: str | None,
    rank: str | None,
    quiet: bool,
) -> None:
    """``backtest --grid``: every combination, ranked, in ``out``."""
    if not grid:
        fail("--workers, --scheduler and --rank apply to a sweep: give --grid NAME=A,B,...")
    if workers is not None and workers < 1:
        fail(f"--workers {workers}: at least 1")
    if scheduler is not None and scheduler != "local" and "://" not in scheduler:
        fail(f"--scheduler {scheduler!r}: 'local' or a Dask address (tcp://HOST:8786)")
    jobs = [(j, _document(j)) for j in config.jobs]
    axes = build_axes(grid, jobs)
    rank_name, descending = parse_rank(rank or "net_pnl", config)
    tasks = combinations(axes, jobs, config)
    summaries: dict[str, dict[str, Any]] = {}
    for key, s, files in execute(
        tasks, workers or os.cpu_count() or 1, scheduler, quiet, rank_name
    ):
        run_dir = out / "runs" / key
        run_dir.mkdir(parents=True, exist_ok=True)
        for name, body in files.items():
            (run_dir / name).write_bytes(body)
        summaries[key] = s
        _done(quiet, len(summaries), len(tasks), key, s, rank_name)
    table = rows(axes, tasks, summaries, rank_name, descending)
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(table)
    (out / "sweep.csv").write_bytes(buf.getvalue().encode())
    best = table[1]
    print(
        f"{len(tasks)} combinations; best by {rank_name}: {best[-1].removeprefix('runs/')} "
        f"({rank_name} {best[1 + len(axes)]}); {out}/sweep.csv"
    )


def _document(job: LoadedJob) -> dict[str, Any]:
    data = yaml.safe_load(job.path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):  # loaded once already: only a file changed under us
        fail(f"{job.path}: expected a mapping of job fields at the top level")
    return data


__all__ = ["Task", "run_task", "sweep_command"]
