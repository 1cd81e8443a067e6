"""``trader-ops kairos``: run the scheduler, or validate / list / run-once its jobs.

Mounted by ``app/cli.py`` with ``app.add_typer(kairos_app, name="kairos")``. Each
command imports the scheduler's machinery (exchange calendars, pandas) itself, so
``trader-ops --version`` does not.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from app.cli_support import settings_or_exit, setup_command_logging

kairos_app = typer.Typer(
    help="Strategy scheduler: YAML jobs on cron, inside exchange sessions, posting signed alerts.",
    no_args_is_help=False,
)

JobsOption = Annotated[
    Path | None, typer.Option("--jobs", help="job directory (default: TRADEROPS_KAIROS_JOBS)")
]
DatahubOption = Annotated[
    str | None,
    typer.Option(
        "--datahub-url",
        envvar="TRADEROPS_DATAHUB_URL",
        help="datahub base URL (default: http://TRADEROPS_HTTP_HOST:TRADEROPS_HTTP_PORT)",
    ),
]


@kairos_app.callback(invoke_without_command=True)
def serve(
    ctx: typer.Context,
    jobs: JobsOption = None,
    datahub_url: DatahubOption = None,
    host: Annotated[
        str | None, typer.Option(help="bind address (default: TRADEROPS_HTTP_HOST)")
    ] = None,
    port: Annotated[
        int, typer.Option(envvar="TRADEROPS_KAIROS_PORT", help="/health and /metrics port")
    ] = 8001,
) -> None:
    """Run the scheduler with /health and /metrics (when no subcommand is given)."""
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    from app.kairos.service import build_kairos, create_app
    from app.observability.tracing import setup_tracing

    settings = settings_or_exit()
    setup_command_logging(settings)
    setup_tracing("kairos")
    kairos, job_set = build_kairos(settings, datahub_url=datahub_url, jobs=jobs)
    if kairos.client.hmac_key is None:
        typer.echo("TRADEROPS_WEBHOOK_HMAC_KEY is required to post alerts", err=True)
        raise typer.Exit(2)
    app = create_app(kairos, job_errors=job_set.errors)
    uvicorn.run(
        app, host=host or settings.http_host, port=port, log_level=settings.log_level.lower()
    )


@kairos_app.command()
def validate(
    files: Annotated[
        list[Path], typer.Argument(help="job files or directories", show_default=False)
    ],
) -> None:
    """Check job files without running them; one line per problem, exit 1 if any."""
    from app.kairos.jobs import job_files, load_jobs

    paths: list[Path] = []
    for f in files:
        paths.extend(job_files(f) if f.is_dir() else [f])
    result = load_jobs(paths)
    for job in result.jobs:
        typer.echo(f"ok    {job.path}: {job.name} ({job.spec.strategy}, {job.spec.schedule!r})")
    for err in result.errors:
        for line in err.lines():
            typer.echo(f"error {line}", err=True)
    if result.errors:
        raise typer.Exit(1)


@kairos_app.command("list")
def list_jobs(jobs: JobsOption = None) -> None:
    """Show jobs and their next run times (exchange time and UTC)."""
    import asyncio

    from app.kairos.service import build_kairos

    settings = settings_or_exit()
    kairos, job_set = build_kairos(settings, jobs=jobs, persist=False)
    upcoming = dict(kairos.upcoming(datetime.now(UTC)))
    typer.echo(f"{'JOB':<22} {'ON':<3} {'STRATEGY':<16} {'SCHEDULE':<16} {'SESSION':<14} NEXT RUN")
    for name, job in kairos.jobs.items():
        spec = job.spec
        due = upcoming.get(name)
        tz = kairos.schedules[name].tz
        when = f"{due.astimezone(tz):%Y-%m-%d %H:%M:%S %Z} ({due:%H:%M:%SZ})" if due else "never"
        session = spec.session.policy.value
        if spec.session.offset_minutes:
            session += f"+{spec.session.offset_minutes}m"
        typer.echo(
            f"{name:<22} {'yes' if spec.enabled else 'no':<3} {spec.strategy:<16} "
            f"{spec.schedule:<16} {session:<14} {when if spec.enabled else '(disabled)'}"
        )
    for err in job_set.errors:
        for line in err.lines():
            typer.echo(f"error {line}", err=True)
    asyncio.run(kairos.client.close())
    if job_set.errors:
        raise typer.Exit(1)


@kairos_app.command("run-once")
def run_once(
    job: Annotated[str, typer.Argument(help="job name")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="print the alerts, post nothing")
    ] = False,
    at: Annotated[
        datetime | None, typer.Option(help="evaluate as of this time (ISO; UTC if no offset)")
    ] = None,
    jobs: JobsOption = None,
    datahub_url: DatahubOption = None,
) -> None:
    """Run one job now (ignoring its schedule) and print the alerts it sends or would send."""
    import asyncio
    import json

    from app.kairos.clock import ManualClock
    from app.kairos.service import build_kairos

    settings = settings_or_exit()
    setup_command_logging(settings, "text")
    when = (at if at.tzinfo else at.replace(tzinfo=UTC)) if at else datetime.now(UTC)
    kairos, job_set = build_kairos(
        settings, datahub_url=datahub_url, jobs=jobs, clock=ManualClock(when), persist=False
    )
    if job not in kairos.jobs:
        for line in (ln for err in job_set.errors for ln in err.lines()):
            typer.echo(f"error {line}", err=True)
        typer.echo(f"no job named {job!r} (have: {', '.join(kairos.jobs) or 'none'})", err=True)
        raise typer.Exit(2)

    async def _go() -> int:
        async with kairos.client:
            report = await kairos.run_job(job, now=when, dry_run=dry_run)
        for sig, body in zip(report.signals, report.alerts, strict=True):
            typer.echo(json.dumps(body, sort_keys=True))
            typer.echo(f"  # {sig.action.value} {sig.symbol}: {sig.reason}", err=True)
        for res in report.results:
            typer.echo(
                f"  # {res.alert_id}: HTTP {res.status} {json.dumps(res.body)[:300]}", err=True
            )
        typer.echo(
            f"{job}: {report.outcome}, {len(report.signals)} signal(s)"
            + (" (dry run)" if dry_run else "")
            + (f": {report.error}" if report.error else ""),
            err=True,
        )
        return 0 if report.outcome == "ok" else 1

    code = asyncio.run(_go())
    if code:
        raise typer.Exit(code)
