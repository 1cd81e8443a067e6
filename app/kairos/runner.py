"""The scheduler: one task per job, sleeping on an injectable clock until the next fire.

No overlap by construction: a job's task awaits its own run before it computes the next
fire, and fires that came due meanwhile are coalesced (the latest one runs if still
within the grace period, the rest count as ``missed``). The last fire handled is kept in
a small state file, so a restart can tell a missed run from a new job.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from app.kairos.alerts import alert_body, encode
from app.kairos.calendar import get_calendar
from app.kairos.clock import Clock, SystemClock
from app.kairos.datahub_client import AlertResult, DatahubClient, DatahubError
from app.kairos.jobs import LoadedJob
from app.kairos.models import Account, Position, Signal
from app.kairos.schedule import JobSchedule
from app.kairos.strategies.base import StrategyContext
from app.models.market import Bar, Resolution
from app.observability.metrics import (
    KAIROS_NEXT_RUN,
    KAIROS_RUN_LATENCY,
    KAIROS_RUNS,
    KAIROS_SIGNALS,
)

log = logging.getLogger("app.kairos")

#: Coalescing a long outage walks every fire since; stop counting past this.
MAX_MISSED_WALK = 100_000


class StateStore(Protocol):
    def last_fire(self, job: str) -> datetime | None: ...

    def set_last_fire(self, job: str, when: datetime) -> None: ...


class MemoryState:
    def __init__(self) -> None:
        self._last: dict[str, datetime] = {}

    def last_fire(self, job: str) -> datetime | None:
        return self._last.get(job)

    def set_last_fire(self, job: str, when: datetime) -> None:
        self._last[job] = when


class FileState:
    """Last handled fire per job in a JSON file, replaced atomically on every write."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._last: dict[str, datetime] = {}
        try:
            raw = json.loads(path.read_text())
            self._last = {k: datetime.fromisoformat(v) for k, v in raw.items()}
        except FileNotFoundError:
            pass
        except (OSError, ValueError, AttributeError) as exc:
            log.warning("ignoring unreadable kairos state %s: %s", path, exc)

    def last_fire(self, job: str) -> datetime | None:
        return self._last.get(job)

    def set_last_fire(self, job: str, when: datetime) -> None:
        self._last[job] = when
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({k: v.isoformat() for k, v in self._last.items()}))
        os.replace(tmp, self.path)


@dataclass
class RunReport:
    """What one run decided and what the datahub answered."""

    job: str
    started: datetime
    nominal: datetime | None = None
    outcome: str = "ok"  # ok | error | timeout | overlap | missed
    signals: list[Signal] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    results: list[AlertResult] = field(default_factory=list)
    error: str | None = None
    dry_run: bool = False
    seconds: float = 0.0


class Kairos:
    """Runs loaded jobs on their schedules against one datahub."""

    def __init__(
        self,
        jobs: Sequence[LoadedJob],
        client: DatahubClient,
        *,
        clock: Clock | None = None,
        state: StateStore | None = None,
        on_report: Callable[[RunReport], None] | None = None,
    ) -> None:
        self.jobs = {j.name: j for j in jobs}
        self.client = client
        self.clock: Clock = clock or SystemClock()
        self.state: StateStore = state or MemoryState()
        self.on_report = on_report
        self.schedules = {
            j.name: JobSchedule.for_job(j.spec, get_calendar(j.spec.calendar)) for j in jobs
        }
        self.last_reports: dict[str, RunReport] = {}
        self.next_due: dict[str, datetime | None] = {}
        self.locks = {name: asyncio.Lock() for name in self.jobs}
        self._book_warned = False

    # -- one run ----------------------------------------------------------------------
    async def run_job(
        self,
        name: str,
        *,
        now: datetime | None = None,
        nominal: datetime | None = None,
        dry_run: bool = False,
    ) -> RunReport:
        """Fetch, evaluate and (unless ``dry_run``) post. Never raises for a job failure:
        the report says what went wrong, and the metrics count it."""
        job = self.jobs[name]
        now = now or self.clock.now()
        report = RunReport(job=name, started=now, nominal=nominal, dry_run=dry_run)
        lock = self.locks[name]
        if lock.locked():
            report.outcome = "overlap"
            self._finish(report)
            return report
        t0 = time.perf_counter()
        async with lock:
            try:
                async with asyncio.timeout(job.spec.timeout_seconds):
                    await self._run(job, now, report)
            except TimeoutError:
                report.outcome, report.error = (
                    "timeout",
                    f"run exceeded {job.spec.timeout_seconds:g}s",
                )
            except (DatahubError, ValueError) as exc:
                report.outcome, report.error = "error", str(exc)
            except Exception as exc:  # a user entry point may raise anything
                log.exception("job %s failed", name)
                report.outcome, report.error = "error", f"{exc.__class__.__name__}: {exc}"
        report.seconds = time.perf_counter() - t0
        if not dry_run:
            KAIROS_RUN_LATENCY.labels(name).observe(report.seconds)
        self._finish(report)
        return report

    def _finish(self, report: RunReport) -> None:
        if not report.dry_run:
            KAIROS_RUNS.labels(report.job, report.outcome).inc()
            self.last_reports[report.job] = report
        level = logging.WARNING if report.outcome not in ("ok",) else logging.INFO
        log.log(
            level,
            "kairos run %s: %s, %d signal(s)%s",
            report.job,
            report.outcome,
            len(report.signals),
            f": {report.error}" if report.error else "",
        )
        if self.on_report is not None:
            self.on_report(report)

    async def gather_context(self, job: LoadedJob, now: datetime) -> StrategyContext:
        """Fetch what the strategy declared it needs, concurrently."""
        needs = job.strategy.needs()
        symbols = job.spec.symbols
        bars_task = quotes_task = book_task = None
        try:
            async with asyncio.TaskGroup() as tg:
                if needs.resolution is not None and needs.bars > 0:
                    bars_task = tg.create_task(
                        self.fetch_bars(symbols, needs.resolution, needs.bars, now)
                    )
                if needs.quotes:
                    quotes_task = tg.create_task(self.client.quotes(symbols))
                if needs.positions:
                    book_task = tg.create_task(self._book())
        except ExceptionGroup as group:
            raise _first(group) from None
        positions, account = book_task.result() if book_task else ({}, None)
        return StrategyContext(
            job=job.spec,
            now=now,
            bars=bars_task.result() if bars_task else {},
            quotes=quotes_task.result() if quotes_task else {},
            positions=positions,
            account=account,
        )

    async def fetch_bars(
        self, symbols: Sequence[str], resolution: Resolution, count: int, now: datetime
    ) -> dict[str, list[Bar]]:
        """Completed bars only: a bar counts once its end is at or before ``now``."""
        ts = int(now.timestamp())
        end = resolution.bar_start(ts)  # start of the forming bar (exclusive bound)
        results = await asyncio.gather(
            *(self.client.history(s, resolution, end=end, countback=count) for s in symbols)
        )
        out: dict[str, list[Bar]] = {}
        if not resolution.intraday:
            return dict(zip(symbols, results, strict=True))
        last_start = ts - resolution.seconds  # (an enum property: read once, not per bar)
        for symbol, bars in zip(symbols, results, strict=True):
            out[symbol] = [b for b in bars if b.time <= last_start]
        return out

    async def _book(self) -> tuple[dict[str, Position], Account | None]:
        if not self.client.admin_key:
            if not self._book_warned:
                log.warning(
                    "no TRADEROPS_ADMIN_API_KEY: strategies see a flat book and do not size"
                )
                self._book_warned = True
            return {}, None
        positions, account = await asyncio.gather(self.client.positions(), self.client.account())
        return positions, account

    async def _run(self, job: LoadedJob, now: datetime, report: RunReport) -> None:
        ctx = await self.gather_context(job, now)
        signals = job.strategy.evaluate(ctx)
        for s in signals:
            if not isinstance(s, Signal):
                raise ValueError(f"strategy returned {type(s).__name__}, not Signal")
        report.signals = list(signals)
        report.alerts = [alert_body(job.name, s) for s in report.signals]
        if report.dry_run:
            return
        failures = 0
        for sig, body in zip(report.signals, report.alerts, strict=True):
            try:
                result = await self.client.post_alert(
                    encode(body), body["alert_id"], webhook=job.spec.webhook
                )
            except DatahubError as exc:
                failures += 1
                log.error("job %s: alert %s not delivered: %s", job.name, body["alert_id"], exc)
                continue
            report.results.append(result)
            if result.accepted:
                KAIROS_SIGNALS.labels(job.name, sig.action.value).inc()
        if failures:
            report.outcome = "error"
            report.error = f"{failures} of {len(report.alerts)} alert(s) not delivered"

    # -- the loop ----------------------------------------------------------------------
    async def run_forever(self) -> None:
        """One task per enabled job; returns only if every job's schedule is exhausted."""
        enabled = [j for j in self.jobs.values() if j.spec.enabled]
        if not enabled:
            log.warning("kairos has no enabled jobs")
        async with asyncio.TaskGroup() as tg:
            for job in enabled:
                tg.create_task(self._job_loop(job.name), name=f"kairos:{job.name}")

    async def _job_loop(self, name: str) -> None:
        sched = self.schedules[name]
        now = self.clock.now()
        last = self.state.last_fire(name)
        if last is None or last > now:
            last = now  # a new job starts from now: nothing to catch up on
        while True:
            nominal = sched.next_fire(last)
            self.next_due[name] = sched.due(nominal) if nominal else None
            if nominal is None:
                log.warning("job %s: no fire time within a year; stopping its loop", name)
                with contextlib.suppress(KeyError):
                    KAIROS_NEXT_RUN.remove(name)
                return
            KAIROS_NEXT_RUN.labels(name).set(sched.due(nominal).timestamp())
            await self.clock.sleep_until(sched.due(nominal))
            now = self.clock.now()
            latest, missed = self._coalesce(sched, nominal, now)
            if missed:
                KAIROS_RUNS.labels(name, "missed").inc(missed)
                log.warning("job %s: %d fire(s) missed before %s", name, missed, latest.isoformat())
            if sched.runnable(latest, now):
                await self.run_job(name, now=now, nominal=latest)
            else:
                KAIROS_RUNS.labels(name, "missed").inc()
                log.warning(
                    "job %s: fire at %s missed (outside grace or session)", name, latest.isoformat()
                )
            self.state.set_last_fire(name, latest)
            last = latest

    @staticmethod
    def _coalesce(sched: JobSchedule, nominal: datetime, now: datetime) -> tuple[datetime, int]:
        """The latest fire already due by ``now``, and how many earlier ones it replaces."""
        latest, missed = nominal, 0
        for _ in range(MAX_MISSED_WALK):
            nxt = sched.next_fire(latest)
            if nxt is None or sched.due(nxt) > now:
                break
            latest, missed = nxt, missed + 1
        return latest, missed

    def upcoming(self, now: datetime | None = None) -> list[tuple[str, datetime | None]]:
        """(job, next due time) for every job, from ``now`` (for ``list`` and /health)."""
        now = now or self.clock.now()
        out = []
        for name, sched in self.schedules.items():
            nominal = sched.next_fire(now - sched.jitter)  # due strictly after now
            out.append((name, sched.due(nominal) if nominal else None))
        return out


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first real error in a (nested) exception group: the one worth reporting."""
    exc = group.exceptions[0]
    return _first(exc) if isinstance(exc, BaseExceptionGroup) else exc
