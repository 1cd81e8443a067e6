"""What every ``trader-ops`` command does first: settings (or one clear line), then logs."""

from __future__ import annotations

import logging
from typing import Literal

import typer

from app.config import ConfigError, Settings, load_settings
from app.observability.logging import setup_logging

_redis_url: str | None = None  # what this command connects to, for error messages


def current_redis_url() -> str | None:
    return _redis_url


def settings_or_exit(*, discover_redis: bool = True, **overrides: object) -> Settings:
    """Settings with the non-None ``overrides``; a bad setting exits 2 with one line.

    With TRADEROPS_REDIS_URL unset, a running ``trader-ops run`` on the same data
    directory is used: it records its Redis URL there (``discover_redis``)."""
    try:
        settings = load_settings(**{k: v for k, v in overrides.items() if v is not None})
        if discover_redis and "redis_url" not in settings.model_fields_set:
            from app.embedded import recorded_url

            url = recorded_url(settings.data_dir)
            if url is not None:
                settings = load_settings(
                    **{k: v for k, v in overrides.items() if v is not None}, redis_url=url
                )
        global _redis_url
        _redis_url = settings.redis_url
        return settings
    except ConfigError as exc:
        typer.echo(f"trader-ops: config error: {exc}", err=True)
        raise typer.Exit(2) from None


def setup_command_logging(settings: Settings, fmt: Literal["json", "text"] | None = None) -> None:
    """The project's log set-up (JSON with trace ids by default), unless the host process
    (a test runner, the embedded stack) has already configured logging."""
    if not logging.getLogger().handlers:
        setup_logging(settings.log_level, fmt or settings.log_format)
