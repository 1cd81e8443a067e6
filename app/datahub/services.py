"""What the datahub's routers need, built once in the lifespan and held on app.state."""

from __future__ import annotations

from dataclasses import dataclass, field

from redis.asyncio import Redis

from app.config import Settings
from app.datahub.market import MarketData
from app.datahub.publisher import QuotePublisher
from app.datahub.stream import QuoteHub
from app.execution.accounts import AccountsConfig
from app.execution.intake import Intake
from app.execution.service import ExecutionService
from app.execution.store import ExecutionStore
from app.feeds.base import Feed
from app.options.chains import OptionChains
from app.portfolio.book import AccountBook


@dataclass
class Services:
    settings: Settings
    redis: Redis
    feed: Feed
    market: MarketData
    hub: QuoteHub
    publisher: QuotePublisher
    accounts: AccountsConfig
    intake: Intake
    execution: ExecutionService | None  # None: engines run in `trader-ops execution`
    chains: OptionChains  # the process's one option chain cache (hand it to an engine too)
    extras: dict[str, object] = field(default_factory=dict)

    def store(self, account: str) -> ExecutionStore:
        """An account's state as every process reads it (Redis, not an engine's memory)."""
        return ExecutionStore(self.redis, account)

    async def book(self, account: str) -> AccountBook | None:
        """An account's stored book, with instrument multipliers (None: never stored)."""
        return await self.store(account).load_book()
