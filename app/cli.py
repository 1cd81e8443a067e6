"""The ``trader-ops`` command."""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated

import typer

from app.config import ConfigError, Settings, describe, load_settings
from app.observability.logging import setup_logging

cli = typer.Typer(
    help="trader-ops: TradingView webhooks, pre-trade risk, brokers, market data, journal.",
    no_args_is_help=True,
    add_completion=False,
)
config_app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)
cli.add_typer(config_app, name="config")


def _settings(**overrides: object) -> Settings:
    try:
        return load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except ConfigError as exc:
        typer.echo(f"trader-ops: config error: {exc}", err=True)
        raise typer.Exit(2) from None


@config_app.command("show")
def config_show() -> None:
    """Print every setting (secrets redacted) and where its value came from."""
    settings = _settings()
    rows = describe(settings)
    width = max(len(r[0]) for r in rows)
    for name, value, source in rows:
        typer.echo(f"{name:<{width}}  {value}  [{source}]")


async def _serve(settings: Settings) -> None:
    import uvicorn

    from app.datahub.app import create_app

    config = uvicorn.Config(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        lifespan="on",
    )
    await uvicorn.Server(config).serve()


@cli.command()
def datahub(
    host: Annotated[str | None, typer.Option(help="bind address (TRADEROPS_HTTP_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="port (TRADEROPS_HTTP_PORT)")] = None,
) -> None:
    """Run the datahub service (Redis at TRADEROPS_REDIS_URL)."""
    settings = _settings(http_host=host, http_port=port)
    setup_logging(settings.log_level, settings.log_format)
    asyncio.run(_serve(settings))


@cli.command()
def run(
    port: Annotated[int | None, typer.Option(help="datahub port (default 8000)")] = None,
    host: Annotated[str | None, typer.Option(help="bind address (default 127.0.0.1)")] = None,
) -> None:
    """Run everything in one process: datahub, simulated feed, paper broker, own Redis."""
    from app.embedded import EmbeddedRedis, EmbeddedRedisError

    base = _settings(http_host=host, http_port=port)
    embedded: EmbeddedRedis | None = None
    overrides: dict[str, object] = {}
    if "redis_url" not in base.model_fields_set:
        embedded = EmbeddedRedis(base.data_dir / "redis")
        try:
            embedded.start()
        except EmbeddedRedisError as exc:
            typer.echo(f"trader-ops: {exc}", err=True)
            raise typer.Exit(1) from None
        overrides["redis_url"] = embedded.url
    settings = _settings(http_host=host, http_port=port, **overrides)
    setup_logging(settings.log_level, "text" if sys.stderr.isatty() else settings.log_format)
    url = f"http://{settings.http_host}:{settings.http_port}"
    typer.echo(
        "trader-ops is starting (embedded mode)\n"
        f"  datahub     {url}   (API docs {url}/docs)\n"
        f"  UDF feed    {url}/udf\n"
        f"  stream      ws://{settings.http_host}:{settings.http_port}/stream\n"
        f"  metrics     {url}/metrics\n"
        f"  redis       {settings.redis_url}  (data in {base.data_dir / 'redis'})\n"
        f"  feed        {settings.feed}, broker {settings.broker}\n"
        "Press Ctrl-C to stop."
    )
    try:
        asyncio.run(_serve(settings))
    except KeyboardInterrupt:
        pass
    finally:
        if embedded is not None:
            embedded.stop()
        typer.echo("trader-ops stopped")


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
