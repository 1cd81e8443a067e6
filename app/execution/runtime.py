"""``trader-ops execution``: the account engines in a process of their own."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from app.bus import create_redis
from app.config import Settings
from app.datahub.market import MarketData
from app.datahub.stream import QuoteHub
from app.datahub.wiring import QuotePump, engine_factory
from app.execution.accounts import load_accounts
from app.execution.service import ExecutionService
from app.feeds import make_feed
from app.procs import settle_heap

log = logging.getLogger(__name__)


async def run_execution(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Hold what accounts this process can until SIGTERM/SIGINT (or ``stop``), then hand
    them over at once (leases released)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    redis = create_redis(settings.redis_url)
    feed = make_feed(settings)  # reference prices when no quote is cached
    await feed.start()
    market = MarketData.from_settings(feed, redis, settings)
    accounts = load_accounts(settings)
    service = ExecutionService(
        accounts.accounts,
        redis,
        engine_factory(settings, redis, market),
        lease_seconds=settings.account_lease_seconds,
    )
    hub = QuoteHub(redis)  # the datahubs' quote fan-out marks positions and fills paper
    pump = QuotePump(service)
    hub.listeners.append(pump.offer)
    hub.listeners.append(market.offer)
    tasks = [asyncio.create_task(hub.run()), asyncio.create_task(pump.run())]
    service.start()
    settle_heap()
    log.info("execution ready", extra={"accounts": accounts.ids, "instance": service.instance})
    try:
        await stop.wait()
    finally:
        log.info("execution stopping: handing accounts over")
        hub.stopping = True
        await service.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await feed.close()
        await redis.aclose()
