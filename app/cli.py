"""The ``trader-ops`` command.

Every command imports what it needs inside its function: ``trader-ops --version`` took
2 s when this module imported the web stack, Redis, pandas and the exchange calendars
for every command (issue 21 item 7). ``tests/unit/test_cli_imports.py`` keeps it so.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from app.backtest.cli import backtest_command, replay_command
from app.cli_support import redis_target, settings_or_exit
from app.journal.cli import journal_app
from app.kairos.cli import kairos_app
from app.notify.cli import notify as notify_command

if TYPE_CHECKING:
    import asyncio

    from app.config import Settings

cli = typer.Typer(
    help="trader-ops: TradingView webhooks, pre-trade risk, brokers, market data, journal.",
    no_args_is_help=True,
    add_completion=False,
)
config_app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)
cli.add_typer(config_app, name="config")
cli.command("notify")(notify_command)
cli.command("backtest")(backtest_command)
cli.command("replay")(replay_command)
cli.add_typer(
    kairos_app, name="kairos", help="Strategy scheduler: run it, or validate/list/run-once jobs."
)
cli.add_typer(
    journal_app, name="journal", help="TradeNote journal worker: run it, or export/status/replay."
)


def _version(value: bool) -> None:
    if value:
        from app import __version__

        typer.echo(f"trader-ops {__version__}")
        raise typer.Exit()


@cli.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="print the version"),
    ] = False,
) -> None:
    """trader-ops: TradingView webhooks, pre-trade risk, brokers, market data, journal."""


def _run(main: Coroutine[Any, Any, None]) -> None:
    """Run on uvloop when it is installed (uvicorn[standard] brings it), else asyncio."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - optional speed-up
        import asyncio

        asyncio.run(main)
        return
    uvloop.run(main)


@config_app.command("show")
def config_show() -> None:
    """Print every setting (secrets redacted) and where its value came from."""
    from app.config import describe

    settings = settings_or_exit()
    target = redis_target()
    found = (
        {"redis_url": f"trader-ops run, {target.recorded_in}"}
        if target and target.recorded_in
        else {}
    )
    rows = describe(settings, found)
    width = max(len(r[0]) for r in rows)
    for name, value, source in rows:
        typer.echo(f"{name:<{width}}  {value}  [{source}]")


async def _serve(settings: Settings, *, with_kairos: bool = False) -> None:
    import asyncio

    import uvicorn

    from app.datahub.app import create_app
    from app.datahub.server import uvicorn_config
    from app.notify.service import start_notifier

    config = uvicorn_config(create_app(settings))
    server = uvicorn.Server(config)
    if not with_kairos:
        await server.serve()
        return
    serving = asyncio.create_task(server.serve())
    while not server.started and not serving.done():  # noqa: ASYNC110 - uvicorn has no started event
        await asyncio.sleep(0.05)
    side: list[asyncio.Task[None]] = []
    if server.started:
        side = [
            t
            for t in (
                await _start_kairos(settings),
                _start_journal(settings),
                start_notifier(settings),
            )
            if t is not None
        ]
    try:
        await serving
    finally:
        for task in side:
            task.cancel()
        await asyncio.gather(*side, return_exceptions=True)


def _start_journal(settings: Settings) -> asyncio.Task[None] | None:
    """The TradeNote journal worker, when TradeNote is configured."""
    import asyncio
    import logging

    from app.config import ConfigError

    log = logging.getLogger("app.journal")
    if not settings.tradenote_url:
        log.info(
            "journal: TRADEROPS_TRADENOTE_URL not set; fills stay in Redis until a journal runs"
        )
        return None
    from app.journal.service import build_worker

    try:
        worker = build_worker(settings)
    except ConfigError as exc:
        log.warning("journal not started: %s", exc)
        return None
    return asyncio.create_task(worker.run_forever(), name="journal")


async def _start_kairos(settings: Settings) -> asyncio.Task[None] | None:
    """The scheduler inside the embedded stack, posting to this process's datahub."""
    import asyncio
    import logging

    from app.kairos.service import build_kairos

    log = logging.getLogger("app.kairos")
    if not settings.kairos_jobs.is_dir():
        log.warning("kairos: no job directory %s; scheduler not started", settings.kairos_jobs)
        return None
    kairos, job_set = build_kairos(settings, datahub_url=f"http://127.0.0.1:{settings.http_port}")
    log.info("kairos: %d jobs loaded, %d files rejected", len(job_set.jobs), len(job_set.errors))

    async def run() -> None:
        try:
            await kairos.run_forever()
        finally:
            await kairos.client.close()

    return asyncio.create_task(run(), name="kairos")


def _accounts_or_exit(settings: Settings) -> None:
    """A bad accounts file stops start-up with one line, like any other setting."""
    from app.execution.accounts import AccountsConfigError, check_accounts, load_accounts

    try:
        check_accounts(load_accounts(settings), settings)
    except AccountsConfigError as exc:
        typer.echo(f"trader-ops: config error: TRADEROPS_ACCOUNTS: {exc}", err=True)
        raise typer.Exit(2) from None


@cli.command()
def datahub(
    host: Annotated[str | None, typer.Option(help="bind address (TRADEROPS_HTTP_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="port (TRADEROPS_HTTP_PORT)")] = None,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="intake worker processes on one port")
    ] = 1,
) -> None:
    """Run the datahub service (Redis at TRADEROPS_REDIS_URL).

    With --workers N, N processes share the port: any of them takes an alert in, and
    each account's engine runs in exactly one of them (a lease), or in `trader-ops
    execution` when TRADEROPS_EXECUTION_IN_DATAHUB=false.
    """
    from app.observability.logging import setup_logging
    from app.observability.tracing import setup_tracing

    settings = settings_or_exit(http_host=host, http_port=port)
    _accounts_or_exit(settings)
    if workers > 1:
        import uvicorn

        # every worker builds its app from the environment: pass the options on
        os.environ["TRADEROPS_HTTP_HOST"] = settings.http_host
        os.environ["TRADEROPS_HTTP_PORT"] = str(settings.http_port)
        # /metrics of any worker reports every worker's (prometheus_client multiprocess)
        import tempfile

        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="trader-ops-metrics-")
        setup_logging(settings.log_level, settings.log_format)
        uvicorn.run(
            "app.datahub.app:app_from_env",
            factory=True,
            host=settings.http_host,
            port=settings.http_port,
            workers=workers,
            log_config=None,
            access_log=False,
            proxy_headers=False,
            ws_per_message_deflate=settings.ws_compression,
            # read deadlines and connection caps in every worker (app/datahub/connguard.py)
            http="app.datahub.connguard:WORKER_PROTOCOL",
        )
        return
    setup_logging(settings.log_level, settings.log_format)
    setup_tracing("datahub")
    _run(_serve(settings))


@cli.command()
def execution(
    metrics_port: Annotated[
        int, typer.Option(help="Prometheus metrics on 127.0.0.1:PORT (0: off)")
    ] = 9101,
    metrics_host: Annotated[str, typer.Option(help="metrics bind address")] = "127.0.0.1",
) -> None:
    """Run the account engines only (no HTTP): each account in exactly one process.

    Start several for fail-over: the others stand by and take an account over within
    TRADEROPS_ACCOUNT_LEASE_SECONDS when its holder dies.
    """
    import contextlib

    from app.observability.logging import setup_logging
    from app.observability.tracing import setup_tracing

    settings = settings_or_exit()
    _accounts_or_exit(settings)
    setup_logging(settings.log_level, settings.log_format)
    setup_tracing("execution")
    if metrics_port:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr=metrics_host)
    from app.execution.runtime import run_execution

    with contextlib.suppress(KeyboardInterrupt):
        _run(run_execution(settings))


@cli.command()
def run(
    port: Annotated[int | None, typer.Option(help="datahub port (default 8000)")] = None,
    host: Annotated[str | None, typer.Option(help="bind address (default 127.0.0.1)")] = None,
) -> None:
    """Run everything in one process: datahub, kairos, journal (if TradeNote is set), own Redis."""
    from app.config import redact_url
    from app.embedded import EmbeddedRedisError, EmbeddedStackRedis, embedded_dir
    from app.observability.logging import setup_logging
    from app.observability.tracing import setup_tracing

    base = settings_or_exit(discover_redis=False, http_host=host, http_port=port)
    _accounts_or_exit(base)
    embedded: EmbeddedStackRedis | None = None
    overrides: dict[str, object] = {}
    if "redis_url" not in base.model_fields_set:
        embedded = EmbeddedStackRedis(embedded_dir(base.data_dir))
        try:
            overrides["redis_url"] = embedded.start()
        except EmbeddedRedisError as exc:
            embedded.stop()
            typer.echo(f"trader-ops: {exc}", err=True)
            raise typer.Exit(1) from None
        for note in embedded.notes:
            typer.echo(f"trader-ops: {note}", err=True)
        # SIGTERM (systemd, a container engine, a closing terminal) stops like Ctrl-C,
        # so the finally below stops Redis; SIGKILL is covered by its parent-death signal
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    secrets_file = base.data_dir / "secrets.env"
    overrides.update(_embedded_secrets(base, secrets_file))
    settings = settings_or_exit(discover_redis=False, http_host=host, http_port=port, **overrides)
    setup_logging(settings.log_level, "text" if sys.stderr.isatty() else settings.log_format)
    setup_tracing("trader-ops")
    url = f"http://{settings.http_host}:{settings.http_port}"
    docs = f"   (API docs {url}/docs)" if settings.api_docs else ""  # else /docs is a 404
    typer.echo(
        "trader-ops is starting (embedded mode)\n"
        f"  console     {url}/\n"
        f"  datahub     {url}{docs}\n"
        f"  UDF feed    {url}/udf\n"
        f"  stream      ws://{settings.http_host}:{settings.http_port}/stream\n"
        f"  metrics     {url}/metrics\n"
        f"  redis       {redact_url(settings.redis_url)}  (data in {embedded_dir(base.data_dir)})\n"
        f"  feed        {settings.feed}\n"
        f"  accounts    {_accounts_line(settings)}\n"
        f"  secrets     webhook passphrase and admin API key in {secrets_file}\n"
        "Press Ctrl-C to stop."
    )
    try:
        _run(_serve(settings, with_kairos=True))
    except KeyboardInterrupt:
        pass
    finally:
        if embedded is not None:
            embedded.stop()
        typer.echo("trader-ops stopped")


def _accounts_line(settings: Settings) -> str:
    """Each account and its broker, as the engines will run them (the accounts file, or
    the one account of the plain settings)."""
    from app.execution.accounts import load_accounts

    accounts = load_accounts(settings).accounts
    return ", ".join(f"{a.id} ({a.broker})" for a in accounts)


def _embedded_secrets(settings: Settings, path: Path) -> dict[str, str]:
    """Secrets the user did not set, generated once and kept in a 0600 file (never printed)."""
    import secrets

    wanted = {
        "webhook_passphrase": settings.webhook_passphrase,
        "admin_api_key": settings.admin_api_key,
        "webhook_hmac_key": settings.webhook_hmac_key,
    }
    missing = [name for name, value in wanted.items() if value is None]
    if not missing:
        return {}
    stored: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if "=" in line and not line.startswith("#"):
                key, _, value = line.partition("=")
                stored[key.strip().removeprefix("TRADEROPS_").lower()] = value.strip()
    for name in missing:
        stored.setdefault(name, secrets.token_urlsafe(24))
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("# generated by `trader-ops run`; used when the variables are not set\n")
        for key, value in sorted(stored.items()):
            out.write(f"TRADEROPS_{key.upper()}={value}\n")
    os.chmod(path, 0o600)
    return {name: stored[name] for name in missing}


def main() -> None:
    try:
        cli()
    except Exception as exc:  # a connection failure is one line; anything else a traceback
        from app.cli_errors import describe_failure

        line = describe_failure(exc)
        if line is None:
            raise
        typer.echo(f"trader-ops: {line}", err=True)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
