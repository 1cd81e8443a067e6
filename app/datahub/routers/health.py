"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from redis.exceptions import RedisError

from app.datahub.deps import ServicesDep
from app.datahub.guards import metrics_authorized
from app.feeds.base import FeedError
from app.observability.prom import render_metrics

router = APIRouter(tags=["health"])


@router.get("/health")
async def health() -> dict[str, str]:
    """Alive: the event loop answers. Dependencies are /ready's business."""
    return {"status": "ok"}


class Readiness(BaseModel):
    status: str
    feed: str | None = None
    problems: dict[str, str] | None = None


@router.get("/ready", response_model=Readiness, responses={503: {"model": Readiness}})
async def ready(services: ServicesDep) -> JSONResponse:
    problems: dict[str, str] = {}
    try:
        await asyncio.wait_for(services.redis.ping(), 2.0)
    except (RedisError, OSError, TimeoutError) as exc:
        problems["redis"] = f"unreachable: {exc or type(exc).__name__}"
    try:
        await asyncio.wait_for(services.feed.ping(), 3.0)
    except (FeedError, OSError, TimeoutError) as exc:
        problems["feed"] = f"unreachable: {exc or type(exc).__name__}"
    try:  # every account held by an engine somewhere (this process or another)
        held = await services.redis.exists(
            *(services.store(a).keys.snapshot for a in services.accounts.ids)
        )
        if held < len(services.accounts.ids):
            problems["execution"] = (
                f"{len(services.accounts.ids) - held} of {len(services.accounts.ids)} "
                "accounts have no running engine yet"
            )
    except (RedisError, OSError):
        pass  # reported as redis above
    if problems:
        return JSONResponse({"status": "unavailable", "problems": problems}, status_code=503)
    return JSONResponse({"status": "ready", "feed": services.feed.name})


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    if not metrics_authorized(request.headers, request.app.state.settings):
        return JSONResponse(
            {"detail": "metrics need Authorization: Bearer <TRADEROPS_METRICS_TOKEN>"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    body, content_type = render_metrics()
    return Response(body, media_type=content_type)
