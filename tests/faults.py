"""Fault injection for a real Redis: a write whose reply is lost, a read while it is down.

Wrap a bound async method (``store.save_fills``, ``PaperBroker._create``...) and assign the
wrapper back; the real server still executes whatever is sent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import RedisError

AsyncFn = Callable[..., Awaitable[Any]]


class Lost:
    """The arguments of each call a wrapper broke (``hits``)."""

    def __init__(self) -> None:
        self.hits: list[tuple[Any, ...]] = []


def reply_lost(real: AsyncFn, *, times: int = 1, log: Lost | None = None) -> AsyncFn:
    """The call runs on the server, then raises as if its reply was lost (``times`` times)."""

    log = log or Lost()

    async def wrapper(*args: Any, **kw: Any) -> Any:
        result = await real(*args, **kw)
        if len(log.hits) < times:
            log.hits.append(args)
            raise RedisError("connection lost after the write (simulated)")
        return result

    return wrapper


def fails(real: AsyncFn, *, times: int = 1, log: Lost | None = None) -> AsyncFn:
    """The call never reaches the server and raises (``times`` times)."""
    log = log or Lost()

    async def wrapper(*args: Any, **kw: Any) -> Any:
        if len(log.hits) < times:
            log.hits.append(args)
            raise RedisError("connection lost (simulated)")
        return await real(*args, **kw)

    return wrapper


def down_while(real: AsyncFn, down: list[bool]) -> AsyncFn:
    """Raises while ``down[0]`` is true (Redis unreachable), then calls through."""

    async def wrapper(*args: Any, **kw: Any) -> Any:
        if down[0]:
            raise RedisError("Redis unreachable (simulated)")
        return await real(*args, **kw)

    return wrapper
