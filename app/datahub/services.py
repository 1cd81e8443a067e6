"""What the datahub's routers need, built once in the lifespan and held on app.state."""

from __future__ import annotations

from dataclasses import dataclass, field

from redis.asyncio import Redis

from app.config import Settings
from app.datahub.market import MarketData
from app.datahub.publisher import QuotePublisher
from app.datahub.stream import QuoteHub
from app.execution.engine import ExecutionEngine
from app.feeds.base import Feed


@dataclass
class Services:
    settings: Settings
    redis: Redis
    feed: Feed
    market: MarketData
    hub: QuoteHub
    publisher: QuotePublisher
    engine: ExecutionEngine
    extras: dict[str, object] = field(default_factory=dict)
