"""Building account engines from settings and the accounts file, and feeding them quotes.

The one place that picks concrete brokers."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from redis.asyncio import Redis

from app.brokers import registry
from app.brokers.base import Broker
from app.brokers.paper import QuoteSource
from app.brokers.registry import BrokerContext
from app.config import Settings
from app.datahub.market import MarketData
from app.execution.accounts import AccountConfig
from app.execution.config import load_execution_config
from app.execution.engine import ExecutionEngine
from app.execution.service import EngineFactory
from app.execution.store import ExecutionStore
from app.feeds.base import FeedError
from app.models.instruments import multiplier_of
from app.models.market import Quote
from app.options.chains import OptionChains
from app.portfolio.book import AccountBook
from app.risk.engine import RiskEngine

log = logging.getLogger(__name__)


def make_broker(
    settings: Settings, redis: Redis, quote: QuoteSource, account: AccountConfig | None = None
) -> Broker:
    """The account's broker, built by the broker's registered factory."""
    account = account or AccountConfig.from_settings(settings)
    spec = registry.get(account.broker)
    return spec.build(BrokerContext(settings, redis, quote, account.id, account.credentials))


def engine_factory(
    settings: Settings, redis: Redis, market: MarketData, chains: OptionChains | None = None
) -> EngineFactory:
    """``chains``: the process's chain cache (the datahub's ``services.chains``, so the API
    and the engines share fetches and latest quotes); None: one for these engines."""
    if chains is None:
        chains = OptionChains(market.feed)  # one short chain cache for the process's accounts

    async def quote(symbol: str) -> Quote | None:
        try:
            return (await market.quotes([symbol])).get(symbol)
        except FeedError:
            return None

    def build(account: AccountConfig, lease: str | None) -> ExecutionEngine:
        limits, sizing = load_execution_config(account.risk_config or settings.risk_config)
        book = AccountBook(account=account.id, cash=0.0, multiplier_of=multiplier_of)
        risk = RiskEngine(limits, market_hours=settings.effective_market_hours, book=book)
        return ExecutionEngine(
            ExecutionStore(redis, account.id, lease),
            make_broker(settings, redis, quote, account),
            risk,
            quote,
            sizing=sizing,
            starting_cash=account.starting_cash or settings.paper_cash,
            alert_ttl=settings.alert_ttl_seconds,
            broker_timeout=settings.broker_timeout_seconds,
            chains=chains,
        )

    return build


def build_engine(
    settings: Settings, redis: Redis, market: MarketData, account: AccountConfig | None = None
) -> ExecutionEngine:
    """One unfenced engine (tools and tests; services run engines under a lease)."""
    return engine_factory(settings, redis, market)(
        account or AccountConfig.from_settings(settings), None
    )


class QuotePump:
    """Conflates fan-out quotes (latest per symbol) into the engines without blocking the hub."""

    def __init__(self, target: Any) -> None:
        self.target = target  # anything with ``async on_quote(Quote)``
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
                    await self.target.on_quote(Quote.model_validate(raw))
                except Exception:
                    log.exception("engine failed to process a quote for %s", raw.get("symbol"))
