"""``trader-ops journal``: run the worker, or export / status / replay.

Mounted by ``app/cli.py`` with ``app.add_typer(journal_app, name="journal")``. Each
command imports the journal's machinery itself, so ``trader-ops --version`` does not.
"""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from app.cli_support import settings_or_exit, setup_command_logging

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from app.journal.sync import Journal

journal_app = typer.Typer(
    help="Journal: every fill into TradeNote (consumer group, retries, dead letters).",
    no_args_is_help=False,
)


@journal_app.callback(invoke_without_command=True)
def serve(
    ctx: typer.Context,
    host: Annotated[
        str | None, typer.Option(help="bind address (default: TRADEROPS_HTTP_HOST)")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(help="/health and /metrics port (default: TRADEROPS_JOURNAL_PORT, 8002)"),
    ] = None,
) -> None:
    """Run the journal worker with /health and /metrics (when no subcommand is given)."""
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    from app.config import ConfigError
    from app.journal.service import build_worker, create_app
    from app.observability.tracing import setup_tracing

    settings = settings_or_exit()
    setup_command_logging(settings)
    setup_tracing("journal")
    try:
        worker = build_worker(settings)
    except ConfigError as exc:
        typer.echo(f"configuration error: {exc}", err=True)
        raise typer.Exit(2) from None
    uvicorn.run(
        create_app(worker),
        host=host or settings.http_host,
        port=port or settings.journal_port,
        log_level=settings.log_level.lower(),
    )


@journal_app.command()
def export(
    day: Annotated[
        datetime, typer.Option("--date", formats=["%Y-%m-%d"], help="trading day (YYYY-MM-DD)")
    ],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="CSV file (default: stdout)")
    ] = None,
) -> None:
    """Write the day's fills as TradeNote's Template CSV, for a manual import."""
    import asyncio

    from app.bus import create_redis
    from app.journal.ledger import day_bounds, read_fills, template_csv
    from app.journal.service import journal_config

    settings = settings_or_exit()
    config = journal_config(settings)

    async def _go() -> tuple[str, int]:
        redis = create_redis(settings.redis_url)
        try:
            start, end = day_bounds(day.date(), day.date(), config.calendar)
            fills = await read_fills(redis, start, end)
        finally:
            await redis.aclose()
        return template_csv(fills, config.account_for, config.tz, config.calendar), len(fills)

    text, count = asyncio.run(_go())
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
    typer.echo(f"{count} fill(s) for {day.date().isoformat()}", err=True)


@journal_app.command("status")
def show_status(
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Backlog (fills not yet in TradeNote), last sync, last error and dead letters."""
    import asyncio
    import json

    from app.bus import create_redis
    from app.journal.service import status

    settings = settings_or_exit()

    async def _go() -> dict[str, Any]:
        redis = create_redis(settings.redis_url)
        try:
            return await status(redis)
        finally:
            await redis.aclose()

    info = asyncio.run(_go())
    if as_json:
        typer.echo(json.dumps(info, sort_keys=True))
        return
    typer.echo(f"backlog       {info['backlog']} (pending {info['pending']}, unread {info['lag']})")
    typer.echo(f"last sync     {_when(info['last_sync'])} ({info['last_sync_count']} fill(s))")
    typer.echo(f"synced total  {info['synced_total']}")
    typer.echo(f"dead letters  {info['dead_letters']}")
    for dead in info["recent_dead_letters"]:
        typer.echo(f"  {dead['id']} (fills entry {dead['entry_id']}): {dead['reason']}")
    if info["last_error"]:
        typer.echo(f"last error    {_when(info['last_error_at'])}: {info['last_error']}")


def _when(ts: float | None) -> str:
    import time

    if ts is None:
        return "never"
    age = time.time() - ts
    return f"{datetime.fromtimestamp(ts, UTC):%Y-%m-%d %H:%M:%SZ} ({age:.0f}s ago)"


@journal_app.command()
def replay(
    start: Annotated[
        datetime | None,
        typer.Option("--from", formats=["%Y-%m-%d"], help="first trading day (YYYY-MM-DD)"),
    ] = None,
    end: Annotated[
        datetime | None,
        typer.Option("--to", formats=["%Y-%m-%d"], help="last trading day (default: --from)"),
    ] = None,
    dead_letters: Annotated[
        bool, typer.Option("--dead-letters", help="re-send the dead-letter stream instead")
    ] = False,
) -> None:
    """Send a date range of fills to TradeNote again (idempotent: nothing is duplicated)."""
    if start is None and not dead_letters:
        typer.echo("give --from DATE [--to DATE], or --dead-letters", err=True)
        raise typer.Exit(2)
    import asyncio

    from app.bus import create_redis
    from app.config import ConfigError
    from app.journal.client import TradeNoteError
    from app.journal.service import journal_config, tradenote_client
    from app.journal.sync import Journal
    from app.journal.worker import default_consumer_name

    settings = settings_or_exit()
    setup_command_logging(settings, "text")
    try:
        config = journal_config(settings)
        client = tradenote_client(settings)
    except ConfigError as exc:
        typer.echo(f"configuration error: {exc}", err=True)
        raise typer.Exit(2) from None

    async def _go() -> int:
        redis = create_redis(settings.redis_url)
        journal = Journal(client, redis, config, owner=f"{default_consumer_name()}-replay")
        try:
            if dead_letters:
                return await replay_dead_letters(journal, redis)
            assert start is not None
            first = start.date()
            last = (end or start).date()
            return await replay_range(journal, redis, first, last, settings.journal_batch_size)
        finally:
            await client.close()
            await redis.aclose()

    try:
        count = asyncio.run(_go())
    except TradeNoteError as exc:
        typer.echo(f"replay failed: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"replayed {count} fill(s)")


async def replay_range(
    journal: Journal, redis: Redis, first: date, last: date, chunk: int = 2000
) -> int:
    """Re-send every fill of [first, last] from the ledger; returns how many."""
    from app.journal.client import TradeNoteError
    from app.journal.ledger import day_bounds, read_fills

    lo, hi = day_bounds(first, last, journal.config.calendar)
    fills = await read_fills(redis, lo, hi)
    for i in range(0, len(fills), chunk):
        part = fills[i : i + chunk]
        result = await journal.sync(part)
        if result.rejected:
            raise TradeNoteError(
                "TradeNote rejected day(s) "
                + ", ".join(str(d) for d in sorted(result.rejected))
                + f": {next(iter(result.rejected.values()))}"
            )
    return len(fills)


async def replay_dead_letters(journal: Journal, redis: Redis) -> int:
    """Re-send the dead-letter stream; entries TradeNote now accepts leave it."""
    from app.bus import Keys
    from app.models.orders import Fill

    entries: Any = await redis.xrange(Keys.JOURNAL_DEAD_LETTERS, count=100_000)
    done = 0
    for entry_id, fields in entries:
        raw = fields.get(b"fill")
        if raw is None:
            continue
        try:
            fill = Fill.model_validate_json(raw)
        except ValueError:
            continue
        result = await journal.sync([fill])
        if result.rejected:
            continue
        await redis.xdel(Keys.JOURNAL_DEAD_LETTERS, entry_id)
        done += 1
    return done
