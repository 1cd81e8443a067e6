"""Broker events, handled in the order they arrived, in batches.

Orders placed together fill together (a batch of alerts, a paper broker filling on
submit): their events are queued and handed to the engine as one list, so the fills
among them are booked under one lock and stored in one write instead of one round trip
each. Each caller still waits for its own event and gets its own outcome.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from app.brokers.base import BrokerEvent

# handles a batch; one outcome per event, in order: None (handled) or what it raised
Handler = Callable[[list[BrokerEvent]], Awaitable[list[BaseException | None]]]


class EventBatches:
    """A queue drained by one task: events that arrive while a batch is being handled
    form the next batch, in arrival order."""

    def __init__(self, handle: Handler) -> None:
        self._handle = handle
        self._pending: list[tuple[BrokerEvent, asyncio.Future[None]]] = []
        self._drainer: asyncio.Task[None] | None = None

    async def put(self, event: BrokerEvent) -> None:
        """Queue ``event`` and wait until it is handled (raises what handling it raised)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._pending.append((event, future))
        if self._drainer is None:
            self._drainer = loop.create_task(self._drain(), name="broker-events")
        await future

    async def close(self) -> None:
        """Stop handling (the engine is closing): whoever still waits is cancelled."""
        drainer, self._drainer = self._drainer, None
        if drainer is not None:
            drainer.cancel()
            await asyncio.gather(drainer, return_exceptions=True)

    async def _drain(self) -> None:
        try:
            await asyncio.sleep(0)  # the rest of this turn's events join the batch
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    outcomes = await self._handle([event for event, _ in batch])
                except BaseException as exc:  # cancelled mid-batch: outcomes unknown
                    for _, future in batch:
                        future.cancel()
                    if not isinstance(exc, Exception):
                        raise
                    outcomes = [exc] * len(batch)
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    if future.done():
                        continue
                    if outcome is None:
                        future.set_result(None)
                    else:
                        future.set_exception(outcome)
                        future.exception()  # retrieved: a caller that left is fine
        finally:
            self._drainer = None
            left, self._pending = self._pending, []
            for _, future in left:  # stopped (the engine is closing): nobody hangs
                future.cancel()
