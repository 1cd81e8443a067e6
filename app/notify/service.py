"""Build the notifier from settings (CLI ``trader-ops notify`` and the embedded stack)."""

from __future__ import annotations

import asyncio
import logging

from app.bus import create_redis
from app.config import Settings
from app.notify.worker import AppriseChannel, NotifyWorker

log = logging.getLogger(__name__)


def enabled_kinds(settings: Settings) -> list[str]:
    flags = {
        "fill": settings.notify_fills,
        "denial": settings.notify_denials,
        "kill_switch": settings.notify_kill_switch,
        "breaker": settings.notify_breaker,
        "unresolved": settings.notify_unresolved,
    }
    return [k for k, on in flags.items() if on]


def notify_urls(settings: Settings) -> list[str]:
    raw = settings.notify_urls.get_secret_value() if settings.notify_urls else ""
    return [u for u in raw.replace(",", " ").split() if u]


def build_notifier(settings: Settings) -> NotifyWorker | None:
    """None when no channel is configured (TRADEROPS_NOTIFY_URLS empty)."""
    urls = notify_urls(settings)
    if not urls:
        return None
    return NotifyWorker(
        create_redis(settings.redis_url),
        AppriseChannel(urls),
        kinds=enabled_kinds(settings),
        coalesce_seconds=settings.notify_coalesce_seconds,
        max_attempts=settings.notify_max_attempts,
        backoff_max_seconds=settings.notify_backoff_max_seconds,
    )


def start_notifier(settings: Settings) -> asyncio.Task[None] | None:
    """The notifier inside the embedded stack (`trader-ops run`), when a channel is set."""
    try:
        worker = build_notifier(settings)
    except ValueError as exc:
        log.warning("notify not started: %s", exc)
        return None
    if worker is None:
        log.info("notify: TRADEROPS_NOTIFY_URLS not set; no trade notifications")
        return None
    return asyncio.create_task(worker.run_forever(), name="notify")
