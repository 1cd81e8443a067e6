"""Building the execution engine from settings, and feeding it quotes."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from redis.asyncio import Redis

from app.brokers.base import Broker
from app.brokers.paper import PaperBroker, QuoteSource
from app.config import Settings
from app.datahub.market import MarketData
from app.execution.config import load_execution_config
from app.execution.engine import ExecutionEngine
from app.execution.store import ExecutionStore
from app.feeds.base import FeedError
from app.models.market import Quote
from app.risk.engine import RiskEngine

log = logging.getLogger(__name__)


def make_broker(settings: Settings, redis: Redis, quote: QuoteSource) -> Broker:
    """The one place that picks a concrete broker."""
    if settings.broker == "tradier":
        from app.brokers.tradier import TradierBroker

        return TradierBroker.from_settings(settings)
    return PaperBroker(
        redis,
        quote,
        slippage_bps=settings.paper_slippage_bps,
        commission_per_share=settings.paper_commission_per_share,
        min_commission=settings.paper_min_commission,
        partial_fill_shares=settings.paper_partial_fill_shares,
    )


def build_engine(settings: Settings, redis: Redis, market: MarketData) -> ExecutionEngine:
    limits, sizing = load_execution_config(settings.risk_config)
    risk = RiskEngine(limits, market_hours=settings.effective_market_hours)

    async def quote(symbol: str) -> Quote | None:
        try:
            return (await market.quotes([symbol])).get(symbol)
        except FeedError:
            return None

    return ExecutionEngine(
        ExecutionStore(redis),
        make_broker(settings, redis, quote),
        risk,
        quote,
        sizing=sizing,
        starting_cash=settings.paper_cash,
        alert_ttl=settings.alert_ttl_seconds,
        broker_timeout=settings.broker_timeout_seconds,
    )


class QuotePump:
    """Conflates fan-out quotes (latest per symbol) into the engine without blocking the hub."""

    def __init__(self, engine: ExecutionEngine) -> None:
        self.engine = engine
        self.latest: dict[str, dict[str, Any]] = {}
        self.wake = asyncio.Event()

    def offer(self, quote: dict[str, Any]) -> None:
        self.latest[quote["symbol"]] = quote
        self.wake.set()

    async def run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            batch, self.latest = self.latest, {}
            for raw in batch.values():
                try:
                    await self.engine.on_quote(Quote.model_validate(raw))
                except Exception:
                    log.exception("engine failed to process a quote for %s", raw.get("symbol"))
