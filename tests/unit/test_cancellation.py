"""Loops that retry through Redis errors still stop when cancelled: redis-py reports a
cancel that lands mid-read as a lost connection (``ConnectionError``), and a loop that
retried it would never end (a `trader-ops notify` that ignores SIGTERM, a test that hangs)."""

from __future__ import annotations

import asyncio
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError

from app.notify.worker import NotifyWorker


class CancelAsLostConnection:
    """A Redis whose blocking read turns its cancellation into ``ConnectionError``."""

    def __init__(self) -> None:
        self.reads = 0

    async def xgroup_create(self, *args: Any, **kwargs: Any) -> None:
        return None

    async def xreadgroup(self, *args: Any, **kwargs: Any) -> Any:
        self.reads += 1
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            raise RedisConnectionError("Connection closed by server.") from None


class NoChannel:
    async def send(self, title: str, body: str) -> None:
        raise AssertionError("nothing to send")


async def test_a_notify_worker_stops_when_cancelled_mid_read() -> None:
    redis = CancelAsLostConnection()
    worker = NotifyWorker(redis, NoChannel(), kinds={"fill"})  # type: ignore[arg-type]
    task = asyncio.create_task(worker.run_forever())
    while not redis.reads:
        await asyncio.sleep(0.01)
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=5)
    assert done, "the worker went on reading after it was cancelled"
    assert task.cancelled()
    assert redis.reads == 1
