"""The kairos process's HTTP face: /health for orchestrators, /metrics for Prometheus.

The scheduler runs as a background task of the app's lifespan, so uvicorn's signal
handling stops both together; if the scheduler dies, /health turns 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.config import Settings
from app.kairos.clock import Clock
from app.kairos.datahub_client import DatahubClient
from app.kairos.jobs import JobFileError, JobSet, load_jobs
from app.kairos.runner import FileState, Kairos, MemoryState

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger("app.kairos")


def create_app(
    kairos: Kairos, *, job_errors: Sequence[JobFileError] = (), run_scheduler: bool = True
) -> FastAPI:
    """FastAPI app for one Kairos; ``run_scheduler=False`` serves health/metrics only
    (for embedding where someone else drives ``kairos.run_forever()``).

    The web stack is imported here, not at module level: ``trader-ops kairos list`` and
    ``run-once`` use this module's :func:`build_kairos` and serve nothing. The routes
    say ``response_model=None`` because their return types are local names FastAPI
    cannot resolve from the module."""
    from fastapi import FastAPI, Response
    from fastapi.responses import JSONResponse
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    state: dict[str, asyncio.Task[None] | None] = {"task": None}

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if run_scheduler:
            state["task"] = asyncio.create_task(kairos.run_forever(), name="kairos")
        try:
            yield
        finally:
            task = state["task"]
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await kairos.client.close()

    app = FastAPI(title="trader-ops kairos", lifespan=lifespan)

    @app.get("/health", response_model=None)
    async def health() -> JSONResponse:
        task = state["task"]
        failed = task is not None and task.done()
        body: dict[str, Any] = {
            "status": "failed" if failed else "ok",
            "jobs": [_job_health(kairos, name) for name in kairos.jobs],
            "job_file_errors": [line for err in job_errors for line in err.lines()],
        }
        if failed and task is not None and not task.cancelled() and task.exception():
            body["error"] = repr(task.exception())
        return JSONResponse(body, status_code=503 if failed else 200)

    @app.get("/metrics", response_model=None)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


def _job_health(kairos: Kairos, name: str) -> dict[str, Any]:
    job = kairos.jobs[name]
    due = kairos.next_due.get(name)
    last = kairos.last_reports.get(name)
    return {
        "name": name,
        "enabled": job.spec.enabled,
        "next_run": due.isoformat() if due else None,
        "last_run": last.started.isoformat() if last else None,
        "last_outcome": last.outcome if last else None,
        "last_error": last.error if last else None,
    }


def default_datahub_url(settings: Settings) -> str:
    """The datahub this host serves (a wildcard bind address is reached via loopback)."""
    host = settings.http_host
    if host in {"0.0.0.0", "::", ""}:  # noqa: S104  # nosec B104 - maps a bind-all address to loopback, binds nothing
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.http_port}"


def build_kairos(
    settings: Settings,
    *,
    datahub_url: str | None = None,
    jobs: Path | Sequence[Path] | None = None,
    clock: Clock | None = None,
    persist: bool = True,
) -> tuple[Kairos, JobSet]:
    """Load jobs and wire a Kairos to the datahub with the configured keys.

    Broken job files are returned in ``JobSet.errors``; the good jobs still run.
    """
    source = jobs if jobs is not None else settings.kairos_jobs
    job_set = load_jobs(source if isinstance(source, Path) else list(source))
    for err in job_set.errors:
        for line in err.lines():
            log.error("kairos job file rejected: %s", line)
    hmac_key = (
        settings.webhook_hmac_key.get_secret_value().encode() if settings.webhook_hmac_key else None
    )
    admin_key = settings.admin_api_key.get_secret_value() if settings.admin_api_key else None
    client = DatahubClient(
        datahub_url or default_datahub_url(settings), hmac_key=hmac_key, admin_key=admin_key
    )
    state = FileState(settings.data_dir / "kairos" / "state.json") if persist else MemoryState()
    return Kairos(job_set.jobs, client, clock=clock, state=state), job_set
