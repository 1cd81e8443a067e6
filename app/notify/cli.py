"""``trader-ops notify``: run the trade-notification worker (or send a test message)."""

from __future__ import annotations

from typing import Annotated

import typer

from app.cli_support import settings_or_exit


def notify(
    test: Annotated[
        bool, typer.Option("--test", help="send one test message to every channel and exit")
    ] = False,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="/metrics port (default TRADEROPS_NOTIFY_PORT, 8003; 0: off)"),
    ] = None,
    metrics_host: Annotated[str, typer.Option(help="metrics bind address")] = "127.0.0.1",
) -> None:
    """Trade notifications: fills, risk denials, kill switch, breaker, unresolved executions."""
    import asyncio
    import contextlib

    from app.notify.service import build_notifier  # apprise: only when this command runs
    from app.notify.worker import DeliveryError
    from app.observability.logging import setup_logging

    settings = settings_or_exit()
    setup_logging(settings.log_level, settings.log_format)
    try:
        worker = build_notifier(settings)
    except ValueError as exc:
        typer.echo(f"configuration error: {exc}", err=True)
        raise typer.Exit(2) from None
    if worker is None:
        typer.echo(
            "configuration error: TRADEROPS_NOTIFY_URLS is empty (apprise URLs, e.g. "
            "tgram://TOKEN/CHAT_ID; see docs/RUNBOOK.md#alert-and-notification-channels)",
            err=True,
        )
        raise typer.Exit(2)
    if test:
        try:
            asyncio.run(worker.channel.send("trader-ops test", "Notifications reach you."))
        except DeliveryError as exc:
            typer.echo(f"test message not delivered: {exc}", err=True)
            raise typer.Exit(1) from None
        typer.echo("test message delivered")
        return
    port = settings.notify_port if metrics_port is None else metrics_port
    if port:
        from prometheus_client import start_http_server

        start_http_server(port, addr=metrics_host)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(worker.run_forever())
