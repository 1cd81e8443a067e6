"""The notification outbox: events with no durable stream of their own (kill-switch
changes, breaker trips, unresolved executions) are appended to ``Keys.NOTIFY_OUTBOX``.

A failed append is logged, never raised: a notification must not stop a kill switch.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.bus import Keys

log = logging.getLogger(__name__)

OUTBOX_MAXLEN = 10_000

# Last state seen per account by watch_state: (breaker state, unresolved > 0).
_seen: dict[str, tuple[str, bool]] = {}


async def emit(redis: Redis, kind: str, account: str, **data: Any) -> None:
    """Append one event (``kind``: kill_switch | breaker | unresolved) for the notifier."""
    fields: dict[str, Any] = {
        "kind": kind,
        "account": account,
        "time": repr(time.time()),
        "data": orjson.dumps(data, default=str),
    }
    try:
        await redis.xadd(Keys.NOTIFY_OUTBOX, fields, maxlen=OUTBOX_MAXLEN, approximate=True)  # type: ignore[arg-type]
    except (RedisError, OSError) as exc:
        log.warning("notify outbox: %s for %s not queued: %s", kind, account, exc)


async def watch_state(
    redis: Redis, account: str, snapshot: dict[str, Any], unresolved: int
) -> None:
    """Emit a breaker change or a new unresolved count when they differ from the last call
    for ``account`` (called with each published risk snapshot)."""
    # the shape of CircuitBreaker.snapshot(): state CLOSED | OPEN | HALF_OPEN, trip_reason
    breaker = snapshot.get("circuit_breaker") or {}
    state = str(breaker.get("state") or "closed").lower()
    before = _seen.get(account, ("closed", False))
    _seen[account] = (state, unresolved > 0)
    if (state == "open") != (before[0] == "open"):
        await emit(redis, "breaker", account, state=state, reason=breaker.get("trip_reason"))
    if (unresolved > 0) != before[1]:
        await emit(redis, "unresolved", account, count=unresolved)
