"""The Tradier broker against the local Tradier-protocol server: one account, a broker
with fast retries and polling, and a collector of what the broker reports."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from app.brokers.base import BrokerEvent
from app.brokers.tradier import TradierBroker
from app.models.orders import OrderStatus
from app.retry import RetryPolicy
from tests.fakes.tradier_orders import TradierAccount, running_account

ACCOUNT = "VA000001"
ORDERS = f"/accounts/{ACCOUNT}/orders"
FAST = RetryPolicy(
    attempts=3,
    total_timeout=5.0,
    wait_initial=0.01,
    wait_max=0.05,
    wait_jitter=0.01,
    retry_after_max=2.0,
)
POLL = 0.02


def make_broker(acct: TradierAccount, *, timeout: float = 2.0) -> TradierBroker:
    return TradierBroker(
        acct.fake.token,
        ACCOUNT,
        acct.fake.base_url,
        timeout=timeout,
        retry=FAST,
        poll_interval=POLL,
    )


class Events:
    """Collects what the broker reports."""

    def __init__(self) -> None:
        self.items: list[BrokerEvent] = []

    async def __call__(self, event: BrokerEvent) -> None:
        self.items.append(event)

    @property
    def fills(self) -> list[Any]:
        return [e.fill for e in self.items if e.fill is not None]

    @property
    def statuses(self) -> list[OrderStatus]:
        return [e.status for e in self.items]


# fixtures: a test module imports them by name (and lists them in its ``__all__``)
@pytest.fixture
async def account() -> AsyncIterator[TradierAccount]:
    async with running_account(ACCOUNT) as acct:
        yield acct


@pytest.fixture
async def events() -> Events:
    return Events()


@pytest.fixture
async def broker(account: TradierAccount, events: Events) -> AsyncIterator[TradierBroker]:
    b = make_broker(account)
    await b.start(events)
    yield b
    await b.close()
