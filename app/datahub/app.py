"""The datahub's app factory: routers per concern, services built in the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import __version__
from app.bus import create_redis
from app.config import Settings
from app.datahub import openapi
from app.datahub.bodyguard import RequestBodyGuard
from app.datahub.guards import HostAllowList
from app.datahub.market import LookupLimitedError, MarketData
from app.datahub.marks import FillMarks
from app.datahub.publisher import QuotePublisher
from app.datahub.routers import (
    admin,
    backtests,
    console,
    health,
    options,
    quotes,
    stream,
    udf,
    webhook,
)
from app.datahub.services import Services
from app.datahub.stream import QuoteHub
from app.datahub.wiring import QuotePump, engine_factory
from app.execution.accounts import load_accounts
from app.execution.intake import Intake, Waiter
from app.execution.service import ExecutionService
from app.feeds import make_feed
from app.feeds.base import Feed
from app.observability.metrics import HTTP_LATENCY, HTTP_REQUESTS
from app.observability.tracing import instrument_app
from app.options.chains import OptionChains
from app.procs import settle_heap

log = logging.getLogger(__name__)


def app_from_env() -> FastAPI:
    """The app of one worker of ``trader-ops datahub --workers N`` (settings from the env)."""
    from app.config import load_settings
    from app.observability.logging import setup_logging
    from app.observability.tracing import setup_tracing

    settings = load_settings()
    setup_logging(settings.log_level, settings.log_format)
    setup_tracing("datahub")
    return create_app(settings)


STOP_SECONDS = 8.0


def create_app(settings: Settings, *, feed: Feed | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis = create_redis(settings.redis_url)
        the_feed = feed or make_feed(settings)
        await the_feed.start()
        market = MarketData.from_settings(the_feed, redis, settings)
        hub = QuoteHub(redis)
        publisher = QuotePublisher(the_feed, redis, market.cache, settings.symbols)
        accounts = load_accounts(settings)
        waiter = Waiter(redis)
        intake = Intake(
            redis,
            accounts,
            waiter,
            alert_ttl=settings.alert_ttl_seconds,
            wait_seconds=settings.intake_wait_seconds,
            repeat_seconds=settings.alert_repeat_seconds,
        )
        chains = OptionChains(the_feed)  # one per process: the API's and the engines'
        execution = None
        if settings.execution_in_datahub:
            execution = ExecutionService(
                accounts.accounts,
                redis,
                engine_factory(settings, redis, market, chains),
                lease_seconds=settings.account_lease_seconds,
            )
        services = Services(
            settings, redis, the_feed, market, hub, publisher, accounts, intake, execution, chains
        )
        services.extras["marks"] = FillMarks(redis)  # our fills as UDF chart marks
        app.state.services = services
        hub.listeners.append(market.offer)
        tasks = [
            asyncio.create_task(hub.run(), name="quote-hub"),
            asyncio.create_task(publisher.run(), name="quote-publisher"),
            asyncio.create_task(waiter.run(), name="decision-listener"),
        ]
        if execution is not None:
            quote_pump = QuotePump(execution)
            hub.listeners.append(quote_pump.offer)
            tasks.append(asyncio.create_task(quote_pump.run(), name="engine-quotes"))
            execution.start()
        with contextlib.suppress(TimeoutError):  # normally ready before the first request
            await asyncio.wait_for(waiter.connected.wait(), 5)
        settle_heap()
        log.info(
            "datahub ready",
            extra={
                "feed": the_feed.name,
                "redis": _redact(settings.redis_url),
                "accounts": accounts.ids,
                "execution": "in this process" if execution is not None else "elsewhere",
            },
        )
        try:
            yield
        finally:
            hub.stopping = publisher.stopping = True
            if execution is not None:
                try:  # a SIGTERM must end the process: hand the accounts over, bounded
                    async with asyncio.timeout(STOP_SECONDS):
                        await execution.stop()
                except TimeoutError:
                    log.warning(
                        "execution did not stop within %.0f s; exiting anyway", STOP_SECONDS
                    )
            for task in tasks:
                task.cancel()
            _, stuck = await asyncio.wait(tasks, timeout=5)
            for task in stuck:
                log.warning("background task %s did not stop within 5 s", task.get_name())
            await publisher.stop()
            await the_feed.close()
            await redis.aclose()

    app = FastAPI(
        title="trader-ops datahub",
        version=__version__,
        description="TradingView UDF datafeed, quotes, WebSocket stream, webhook intake and admin API.",
        lifespan=lifespan,
        docs_url=None,  # app/datahub/openapi.py: local assets, only with TRADEROPS_API_DOCS
        redoc_url=None,
    )
    openapi.install(app, docs=settings.api_docs)
    app.state.settings = settings  # for the server's own options (app/datahub/server.py)
    # the hot routes first: Starlette tries routes in order, per request
    app.include_router(webhook.router)
    app.include_router(quotes.router)
    app.include_router(udf.router)
    app.include_router(health.router)
    app.include_router(stream.router)
    app.include_router(admin.router)
    app.include_router(options.router)
    app.include_router(backtests.router)
    app.include_router(console.router)
    instrument_app(app)  # no-op unless setup_tracing() ran first

    @app.exception_handler(RedisError)
    async def _redis_down(request: Request, exc: RedisError) -> JSONResponse:
        """Redis restarting or unreachable: a clear, retryable 503 rather than a 500."""
        log.warning("state store unavailable for %s: %s", request.url.path, exc)
        if request.url.path.startswith("/udf/"):
            return JSONResponse(
                {"s": "error", "errmsg": "state store unavailable; retry"}, status_code=503
            )
        return JSONResponse(
            {"detail": "state store unavailable (Redis); nothing was changed, retry"},
            status_code=503,
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(LookupLimitedError)
    async def _lookups_limited(request: Request, exc: LookupLimitedError) -> JSONResponse:
        """A client naming many symbols the cache does not know: 429, no feed call."""
        headers = {"Retry-After": str(max(1, round(exc.retry_after)))}
        if request.url.path.startswith("/udf/"):
            return JSONResponse({"s": "error", "errmsg": str(exc)}, 429, headers=headers)
        return JSONResponse({"detail": str(exc)}, 429, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"][1:]) or "body", "problem": e["msg"]}
            for e in exc.errors()
        ]
        if request.url.path.startswith("/udf/"):
            text = "; ".join(f"{e['field']}: {e['problem']}" for e in errors)
            return JSONResponse({"s": "error", "errmsg": text}, status_code=400)
        return JSONResponse({"detail": "invalid request", "errors": errors}, status_code=422)

    app.add_middleware(RequestBodyGuard, settings=settings)  # before any body is read
    app.add_middleware(HTTPMetrics)
    app.add_middleware(HostAllowList, settings=settings)  # outermost: before anything else
    return app


CLIENT_ABORT = 499  # nginx's code for "client closed the request": no answer was sent


class HTTPMetrics:
    """Request count and latency per route template (pure ASGI: no per-request task)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except ClientDisconnect:  # the client went away mid-body: its abort, not our 500
            status = CLIENT_ABORT
            log.info("client disconnected before its request body was read: %s", scope["path"])
        finally:
            route: Any = scope.get("route")
            template = str(getattr(route, "path", "unmatched"))
            HTTP_LATENCY.labels(template).observe(time.perf_counter() - start)
            HTTP_REQUESTS.labels(template, scope["method"], str(status)).inc()


def _redact(url: str) -> str:
    if "@" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
