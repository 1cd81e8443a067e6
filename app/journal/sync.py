"""Journal fills into TradeNote: upsert each touched day document, batched.

One ``sync(fills)`` call loads (the user, cached; the touched day documents in one query;
the positions open at the end of the days it continues from), plans
(``app/journal/plan.py``: a pure function from the stored days and the new fills to the
documents to write) and applies the plan (the user's accounts first, every day in one
Parse ``/batch``, then the end-of-day positions in Redis).

Positions open at the end of a day are kept in Redis (``Keys.JOURNAL_EOD``, one entry
per journaled day) so the next day's round trips continue them. When a day's closing
positions change (a late fill, a replay), the next journaled day is rebuilt too.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from redis.asyncio import Redis

from app.bus import Keys
from app.journal.client import (
    TradeNoteClient,
    TradeNoteError,
    TradeNoteRejected,
    TradeNoteUser,
)
from app.journal.plan import (
    JournalConfig,
    Plan,
    Stored,
    fills_by_day,
    needed_days,
    plan_sync,
)
from app.journal.tradenote import close_carried_trade, positions_from_json, positions_to_json
from app.models.orders import Fill

__all__ = ["Journal", "JournalConfig", "JournalLockBusy", "SyncResult"]

log = logging.getLogger("app.journal")

LOCK_TTL_MS = 30_000
TAKEOVER_GRACE_SECONDS = 2.0


@dataclass
class SyncResult:
    days_written: list[int] = field(default_factory=list)
    executions_added: int = 0
    rejected: dict[int, TradeNoteRejected] = field(default_factory=dict)  # dateUnix -> error

    def fill_ok(self, fill: Fill, config: JournalConfig) -> bool:
        return config.date_unix(fill) not in self.rejected


class JournalLockBusy(TradeNoteError):
    reason = "lock"


class Journal:
    """Writes fills into TradeNote (idempotent: a fill already there is not added again)."""

    def __init__(
        self, client: TradeNoteClient, redis: Redis, config: JournalConfig, *, owner: str
    ) -> None:
        self.client = client
        self.redis = redis
        self.config = config
        self.owner = owner
        self._user: TradeNoteUser | None = None

    async def user(self, *, refresh: bool = False) -> TradeNoteUser:
        if self._user is None or refresh:
            self._user = await self.client.find_user(self.config.username)
        return self._user

    def forget_user(self) -> None:
        self._user = None

    @asynccontextmanager
    async def lock(self, wait: float = 10.0) -> AsyncIterator[None]:
        """One writer at a time across processes (a worker and a ``replay``). A lock left
        by a killed process of the same owner is taken over at once."""
        token = f"{self.owner}:{secrets.token_hex(4)}"
        deadline = time.monotonic() + wait
        while True:
            if await self.redis.set(Keys.JOURNAL_LOCK, token, nx=True, px=LOCK_TTL_MS):
                break
            holder = _text(await self.redis.get(Keys.JOURNAL_LOCK))
            if holder is not None and holder.rsplit(":", 1)[0] == self.owner:
                # our previous incarnation died holding it: let its last in-flight write
                # land before we read the day documents, then take over
                await asyncio.sleep(TAKEOVER_GRACE_SECONDS)
                await self.redis.set(Keys.JOURNAL_LOCK, token, px=LOCK_TTL_MS)
                break
            if time.monotonic() >= deadline:
                raise JournalLockBusy(
                    f"another journal writer holds the lock ({holder!r}); retrying"
                )
            await asyncio.sleep(0.1)
        try:
            yield
        finally:
            if _text(await self.redis.get(Keys.JOURNAL_LOCK)) == token:
                await self.redis.delete(Keys.JOURNAL_LOCK)

    async def sync(self, fills: Sequence[Fill], *, rebuild_days: Sequence[int] = ()) -> SyncResult:
        """Upsert every day these fills touch (plus ``rebuild_days``); see module doc."""
        result = SyncResult()
        if not fills and not rebuild_days:
            return result
        async with self.lock():
            await self.redis.pexpire(Keys.JOURNAL_LOCK, LOCK_TTL_MS)
            return await self._sync(fills, rebuild_days, result)

    async def _sync(
        self, fills: Sequence[Fill], rebuild_days: Sequence[int], result: SyncResult
    ) -> SyncResult:
        user = await self.user()
        by_day = fills_by_day(fills, self.config, rebuild_days)
        stored = await self._load(user, by_day)
        plan = plan_sync(stored, by_day, self.config, user)
        while not plan.complete:  # a cascade reached a day not loaded yet
            await self._load_more(user, stored, plan.missing_docs, plan.missing_eod)
            plan = plan_sync(stored, by_day, self.config, user)
        return await self._apply(user, plan, result)

    # -- load ---------------------------------------------------------------------------
    async def _load(self, user: TradeNoteUser, by_day: dict[int, list[Fill]]) -> Stored:
        """The journaled days (Redis), the touched day documents (TradeNote) and the
        positions open at the end of the days the plan continues from (Redis)."""
        days_raw: Any = await self.redis.zrange(Keys.JOURNAL_DAYS, 0, -1, withscores=True)
        stored = Stored(journaled={int(float(score)) for _, score in days_raw})
        docs, eod = needed_days(by_day, stored.journaled)
        await self._load_more(user, stored, docs, eod)
        return stored

    async def _load_more(
        self, user: TradeNoteUser, stored: Stored, docs: set[int], eod: set[int]
    ) -> None:
        docs, eod = docs - stored.docs_loaded, eod - stored.eod_loaded
        if docs:
            stored.docs.update(await self.client.find_days(user, sorted(docs)))
            stored.docs_loaded |= docs
        if eod:
            days = sorted(eod)
            raws: list[Any] = await self.redis.hmget(Keys.JOURNAL_EOD, [str(d) for d in days])
            for day, raw in zip(days, raws, strict=True):
                stored.eod[day] = positions_from_json(orjson.loads(raw)) if raw else {}
            stored.eod_loaded |= eod

    # -- apply --------------------------------------------------------------------------
    async def _apply(self, user: TradeNoteUser, plan: Plan, result: SyncResult) -> SyncResult:
        """Accounts first (TradeNote shows a trade only if its account is in the user's
        accounts when the user logs in), then every day in one /batch, then the end-of-day
        positions of the days TradeNote took, the duplicate documents, swing closures."""
        await self.client.ensure_accounts(user, plan.accounts)
        for day, dup, kept in plan.duplicates_merged:
            log.warning(
                "TradeNote has two documents for day %s: merging %s into %s", day, dup, kept
            )
        result.executions_added += plan.executions_added
        outcomes = await self.client.batch([w.request for w in plan.writes])
        pipe = self.redis.pipeline(transaction=True)
        for write, outcome in zip(plan.writes, outcomes, strict=True):
            if outcome.error is not None:
                result.rejected[write.day] = outcome.error
                log.error("TradeNote rejected the day %s: %s", write.day, outcome.error)
                continue
            result.days_written.append(write.day)
            carry = orjson.dumps(positions_to_json(write.carry_out))
            pipe.hset(Keys.JOURNAL_EOD, str(write.day), carry)
            pipe.zadd(Keys.JOURNAL_DAYS, {str(write.day): write.day})
        await pipe.execute()
        if plan.stale and not result.rejected:
            deletes = [{"method": "DELETE", "path": f"classes/trades/{oid}"} for oid in plan.stale]
            for outcome in await self.client.batch(deletes):
                if outcome.error is not None:
                    log.error("could not delete a duplicate day document: %s", outcome.error)
        await self._close_origins(user, plan.closed_carried, set(result.days_written))
        return result

    async def _close_origins(
        self, user: TradeNoteUser, closed: list[tuple[int, str, int]], written: set[int]
    ) -> None:
        """Mark swing trades closed in the day they were opened (like TradeNote's importer)."""
        if not closed:
            return
        by_origin: dict[int, list[tuple[str, int]]] = defaultdict(list)
        for origin, trade_id, exit_time in closed:
            by_origin[origin].append((trade_id, exit_time))
        try:
            docs = await self.client.find_days(user, sorted(by_origin))
            requests = []
            for origin, items in by_origin.items():
                doc = docs.get(origin)
                if doc is None:
                    continue
                update: dict[str, Any] | None = None
                for trade_id, exit_time in items:
                    changed = close_carried_trade(update or doc, trade_id, exit_time)
                    if changed is not None:
                        update = {**(update or {}), **changed}
                if update is not None:
                    requests.append(
                        {
                            "method": "PUT",
                            "path": f"classes/trades/{doc['objectId']}",
                            "body": update,
                        }
                    )
            if requests:
                await self.client.batch(requests)
        except TradeNoteError as exc:  # cosmetic: the P&L is already right
            log.warning("could not mark swing trades closed on their opening day: %s", exc)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)
