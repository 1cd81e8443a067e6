"""Backtest runs under ``/api/v1/backtests`` (``X-API-Key``): the run directories of
``TRADEROPS_BACKTEST_DIR`` (default ``<data_dir>/backtests``, where ``trader-ops
backtest`` writes without ``--out``) and their files.

Only a directory directly under it with a ``summary.json`` is a run; only the files of
:data:`FILES` and ``report.html`` are served. A name outside ``[A-Za-z0-9._=,+-]``, one
with ``..``, a symlink (run or file) or anything resolving outside the directory is a 404.

The report is our own static page (inline CSS and SVG, no script): served with a
Content-Security-Policy that allows its inline styles and nothing else (no script, no
fetch, ``sandbox``). The console fetches it with the key and shows it in a sandboxed
frame (``/report-frame``, ``app/datahub/routers/console.py``).
"""

from __future__ import annotations

import logging
import os
import re
import stat
from pathlib import Path
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from app.config import Settings
from app.datahub.deps import SettingsDep
from app.datahub.errors import InvalidRequest, Problem, responses
from app.datahub.security import AdminDep

log = logging.getLogger(__name__)

router = APIRouter(
    prefix="/api/v1/backtests",
    tags=["backtests"],
    dependencies=[AdminDep],
    responses={**responses(Problem, 401, 404, 503), **responses(InvalidRequest, 422)},
)

NAME = re.compile(r"[A-Za-z0-9._=,+-]{1,255}")
SUMMARY = "summary.json"
REPORT = "report.html"
CSV = "text/csv; charset=utf-8"
FILES = {
    SUMMARY: "application/json",
    "orders.csv": CSV,
    "fills.csv": CSV,
    "fills_tradenote.csv": CSV,
    "equity.csv": CSV,
}
MAX_BYTES = 256 * 1024 * 1024  # a file larger than this is not served (a year of fills is ~MBs)
REPORT_CSP = "; ".join(
    [
        "default-src 'none'",
        "style-src 'unsafe-inline'",
        "img-src data:",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
        "sandbox",
    ]
)
PRIVATE = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
REPORT_HEADERS = {**PRIVATE, "Content-Security-Policy": REPORT_CSP, "X-Frame-Options": "DENY"}


class BacktestRun(BaseModel):
    """One run: its summary.json's headline figures (null where the file lacks one)."""

    model_config = ConfigDict(populate_by_name=True)

    name: str = Field(description="the run's directory under TRADEROPS_BACKTEST_DIR")
    start: str | None = Field(None, alias="from", description="first day (ISO time)")
    end: str | None = Field(None, alias="to", description="last day (ISO time)")
    net_pnl: float | None = None
    return_pct: float | None = Field(None, description="percent: 1.5 is +1.5 %")
    trades: int | None = Field(None, description="closed round trips (metrics.trades)")
    max_drawdown: float | None = Field(None, description="dollars (metrics.max_drawdown)")
    max_drawdown_pct: float | None = Field(None, description="fraction of the peak")
    modified: float = Field(description="summary.json's modification time, epoch seconds")
    files: list[str] = Field(description="the run's files this API serves (report.html too)")


class BacktestRuns(BaseModel):
    backtests: list[BacktestRun] = Field(description="newest first")


def _root(settings: Settings) -> Path:
    return settings.effective_backtest_dir.resolve()


def _valid(name: str) -> bool:
    return bool(NAME.fullmatch(name)) and ".." not in name and not name.startswith(".")


def _run_dir(root: Path, name: str) -> Path | None:
    """The run's directory: a real directory directly under ``root`` (no symlink)."""
    if not _valid(name):
        return None
    path = root / name
    if path.is_symlink() or not path.is_dir() or path.resolve().parent != root:
        return None
    return path


def _read(directory: Path, file: str) -> bytes | None:
    """A regular file of the run, never through a symlink (O_NOFOLLOW on the file itself;
    the directory was checked by :func:`_run_dir`)."""
    try:
        fd = os.open(directory / file, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_BYTES:
            return None
        return f.read()


def _figure(data: dict[str, Any], *path: str) -> Any:
    node: Any = data
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, int | float | str) and not isinstance(node, bool) else None


def _run(directory: Path) -> BacktestRun | None:
    body = _read(directory, SUMMARY)
    if body is None:
        return None
    try:
        data = orjson.loads(body)
        modified = (directory / SUMMARY).stat().st_mtime
    except (orjson.JSONDecodeError, OSError) as exc:
        log.warning("backtest %s: unreadable summary.json: %s", directory.name, exc)
        return None
    if not isinstance(data, dict):
        return None
    files = [
        f
        for f in (REPORT, *FILES)
        if (directory / f).is_file() and not (directory / f).is_symlink()
    ]
    try:
        return BacktestRun(
            name=directory.name,
            start=_figure(data, "from"),
            end=_figure(data, "to"),
            net_pnl=_figure(data, "net_pnl"),
            return_pct=_figure(data, "return_pct"),
            trades=_figure(data, "metrics", "trades"),
            max_drawdown=_figure(data, "metrics", "max_drawdown"),
            max_drawdown_pct=_figure(data, "metrics", "max_drawdown_pct"),
            modified=modified,
            files=files,
        )
    except ValueError as exc:  # a figure of the wrong type: listed without it would hide why
        log.warning("backtest %s: unexpected summary.json: %s", directory.name, exc)
        return None


@router.get("")
def list_runs(
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="at most this many")] = 200,
) -> BacktestRuns:
    """The runs in TRADEROPS_BACKTEST_DIR (directories with a summary.json), newest first."""
    root = _root(settings)
    try:
        entries = list(root.iterdir())
    except OSError:  # not created yet: no run so far
        return BacktestRuns(backtests=[])
    runs = []
    for entry in entries:
        directory = _run_dir(root, entry.name)
        run = _run(directory) if directory is not None else None
        if run is not None:
            runs.append(run)
    runs.sort(key=lambda r: (-r.modified, r.name))
    return BacktestRuns(backtests=runs[:limit])


def _file(settings: Settings, name: str, file: str) -> bytes:
    directory = _run_dir(_root(settings), name)
    body = _read(directory, file) if directory is not None else None
    if body is None:
        raise HTTPException(404, f"no backtest file {name[:80]!r}/{file[:40]!r}")
    return body


@router.get(
    "/{name}/report",
    response_class=Response,
    responses={200: {"content": {"text/html": {}}, "description": "the run's report.html"}},
)
def report(settings: SettingsDep, name: str) -> Response:
    """The run's report.html (static: inline CSS and SVG; served with a CSP that runs no
    script)."""
    body = _file(settings, name, REPORT)
    return Response(body, media_type="text/html; charset=utf-8", headers=REPORT_HEADERS)


@router.get(
    "/{name}/{file}",
    response_class=Response,
    responses={200: {"content": {CSV: {}, "application/json": {}}, "description": "the file"}},
)
def run_file(settings: SettingsDep, name: str, file: str) -> Response:
    """One of the run's files: summary.json, orders.csv, fills.csv, fills_tradenote.csv,
    equity.csv."""
    media_type = FILES.get(file)
    if media_type is None:
        raise HTTPException(404, f"no backtest file {file[:40]!r} (one of {', '.join(FILES)})")
    body = _file(settings, name, file)
    disposition = f'attachment; filename="{name}-{file}"'  # (name: [A-Za-z0-9._=,+-] only)
    return Response(
        body, media_type=media_type, headers={**PRIVATE, "Content-Disposition": disposition}
    )
