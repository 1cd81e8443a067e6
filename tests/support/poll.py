"""Waiting for a condition with a deadline: one poller for every test."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx


async def until(
    predicate: Callable[[], bool | Awaitable[bool]],
    timeout: float = 5.0,
    what: str = "",
    every: float = 0.01,
) -> None:
    """Poll ``predicate`` (sync or async) until it is true; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, f"condition not met in {timeout}s: {what}"
        await asyncio.sleep(every)


async def until_json(
    client: httpx.AsyncClient,
    path: str,
    ok: Callable[[Any], bool],
    timeout: float = 5.0,
    **kw: Any,
) -> Any:
    """GET ``path`` until it answers 200 with a body ``ok`` accepts; returns the body."""
    deadline = time.monotonic() + timeout
    while True:
        r = await client.get(path, **kw)
        if r.status_code == 200:
            body = r.json()
            if ok(body):
                return body
        assert time.monotonic() < deadline, (
            f"{path}: condition not met: {r.status_code} {r.text[:400]}"
        )
        await asyncio.sleep(0.05)
