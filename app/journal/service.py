"""The journal process: the worker as a background task, /health and /metrics over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.bus import Keys, create_redis
from app.config import ConfigError, Settings
from app.journal.client import TradeNoteClient
from app.journal.sync import Journal, JournalConfig
from app.journal.worker import JOURNAL_RETRY, JournalWorker, backlog, default_consumer_name
from app.sessions import calendar_names

log = logging.getLogger("app.journal")


def journal_config(settings: Settings) -> JournalConfig:
    try:
        tz = ZoneInfo(settings.tradenote_timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"TRADEROPS_TRADENOTE_TIMEZONE: unknown time zone {settings.tradenote_timezone!r}"
        ) from None
    if settings.journal_calendar not in calendar_names():
        raise ConfigError(
            f"TRADEROPS_JOURNAL_CALENDAR: unknown exchange calendar {settings.journal_calendar!r}"
        )
    return JournalConfig(
        username=settings.tradenote_username or "",
        tz=tz,
        calendar=settings.journal_calendar,
    )


def tradenote_client(settings: Settings) -> TradeNoteClient:
    missing = [
        f"TRADEROPS_{name.upper()}"
        for name in (
            "tradenote_url",
            "tradenote_app_id",
            "tradenote_master_key",
            "tradenote_username",
        )
        if not getattr(settings, name)
    ]
    if missing:
        raise ConfigError(f"the journal needs {', '.join(missing)}")
    assert settings.tradenote_url and settings.tradenote_app_id and settings.tradenote_master_key
    return TradeNoteClient(
        settings.tradenote_url,
        settings.tradenote_app_id,
        settings.tradenote_master_key.get_secret_value(),
        timeout=settings.tradenote_timeout_seconds,
    )


def build_worker(
    settings: Settings, redis: Redis | None = None, *, consumer: str | None = None
) -> JournalWorker:
    """A worker wired from settings (raises ConfigError naming what is missing)."""
    config = journal_config(settings)
    client = tradenote_client(settings)
    redis = redis or create_redis(settings.redis_url)
    name = consumer or default_consumer_name()
    journal = Journal(client, redis, config, owner=name)
    return JournalWorker(
        redis,
        journal,
        consumer=name,
        batch_size=settings.journal_batch_size,
        max_attempts=settings.journal_max_attempts,
        retry=replace(JOURNAL_RETRY, wait_max=settings.journal_backoff_max_seconds),
    )


def create_app(worker: JournalWorker) -> FastAPI:
    state: dict[str, asyncio.Task[None] | None] = {"task": None}

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state["task"] = asyncio.create_task(worker.run_forever(), name="journal")
        try:
            yield
        finally:
            worker.stop()
            task = state["task"]
            if task is not None:
                try:
                    await asyncio.wait_for(task, timeout=10)
                except (TimeoutError, asyncio.CancelledError, Exception):
                    task.cancel()
            await worker.journal.client.close()
            await worker.redis.aclose()

    app = FastAPI(title="trader-ops journal", lifespan=lifespan)

    @app.get("/health")
    async def health() -> JSONResponse:
        task = state["task"]
        failed = task is not None and task.done()
        body: dict[str, Any] = {
            "status": "failed" if failed else ("ok" if worker.healthy else "degraded"),
            "consumer": worker.consumer,
            "last_sync": worker.last_sync,
            "last_sync_age_seconds": round(time.time() - worker.last_sync, 3)
            if worker.last_sync
            else None,
            "last_error": None if worker.healthy else worker.last_error,
            "synced": worker.synced_total,
        }
        try:
            body.update(await backlog(worker.redis))
        except RedisError as exc:
            body["status"] = "degraded"
            body["redis_error"] = str(exc)
        return JSONResponse(body, status_code=503 if failed else 200)

    @app.get("/metrics")
    async def metrics_endpoint() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


async def status(redis: Redis) -> dict[str, Any]:
    """Backlog, last sync, last error and dead letters, for ``journal status``."""
    info: dict[str, Any] = dict(await backlog(redis))
    raw: Any = await redis.hgetall(Keys.JOURNAL_STATUS)
    fields = {k.decode(): v.decode() for k, v in raw.items()}
    info["last_sync"] = float(fields["last_sync"]) if "last_sync" in fields else None
    info["last_sync_count"] = int(fields.get("last_sync_count", 0))
    info["synced_total"] = int(fields.get("synced_total", 0))
    info["last_error"] = fields.get("last_error")
    info["last_error_at"] = float(fields["last_error_at"]) if "last_error_at" in fields else None
    dead: Any = await redis.xrevrange(Keys.JOURNAL_DEAD_LETTERS, count=5)
    info["recent_dead_letters"] = [
        {
            "id": (i.decode() if isinstance(i, bytes) else str(i)),
            "reason": f.get(b"reason", b"").decode(),
            "entry_id": f.get(b"entry_id", b"").decode(),
        }
        for i, f in dead
    ]
    return info
