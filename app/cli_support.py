"""What every ``trader-ops`` command does first: settings (or one clear line), then logs.

Imported by every command, so it imports nothing heavy at module level: ``trader-ops
--version`` should not pay for pydantic, Redis or the web stack (issue 21 item 7).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import typer

if TYPE_CHECKING:
    from app.config import Settings


@dataclass(frozen=True)
class RedisTarget:
    """The Redis a command connects to and why that one, for its error messages.

    ``explicit``: the user set TRADEROPS_REDIS_URL (environment, ``_FILE``, env file);
    ``recorded_in``: else the ``redis.url`` of a running ``trader-ops run`` it came from;
    neither: the built-in default, which only a stack on ``data_dir`` would normally
    serve."""

    url: str
    data_dir: Path
    explicit: bool
    recorded_in: Path | None = None


_target: RedisTarget | None = None


def redis_target() -> RedisTarget | None:
    """What the last :func:`settings_or_exit` chose (``None`` before any)."""
    return _target


def settings_or_exit(*, discover_redis: bool = True, **overrides: object) -> Settings:
    """Settings with the non-None ``overrides``; a bad setting exits 2 with one line.

    With TRADEROPS_REDIS_URL unset, a running ``trader-ops run`` on the same data
    directory is used: it records its Redis URL there (``discover_redis``)."""
    from app.config import ConfigError, load_settings

    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        settings = load_settings(**given)
        explicit = "redis_url" in settings.model_fields_set
        recorded_in: Path | None = None
        if discover_redis and not explicit:
            from app.embedded import URL_FILE, embedded_dir, recorded_url

            url = recorded_url(settings.data_dir)
            if url is not None:
                settings = load_settings(**given, redis_url=url)
                recorded_in = embedded_dir(settings.data_dir) / URL_FILE
    except ConfigError as exc:
        typer.echo(f"trader-ops: config error: {exc}", err=True)
        raise typer.Exit(2) from None
    global _target
    _target = RedisTarget(settings.redis_url, settings.data_dir, explicit, recorded_in)
    return settings


def setup_command_logging(settings: Settings, fmt: Literal["json", "text"] | None = None) -> None:
    """The project's log set-up (JSON with trace ids by default), unless the host process
    (a test runner, the embedded stack) has already configured logging."""
    import logging

    from app.observability.logging import setup_logging

    if not logging.getLogger().handlers:
        setup_logging(settings.log_level, fmt or settings.log_format)
