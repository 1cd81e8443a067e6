"""Journal fills into TradeNote: upsert each touched day document, batched.

One ``sync(fills)`` call: find the user (cached), make sure its accounts list names our
accounts, load the touched day documents in one query, merge the new executions by
fill id, rebuild round trips / blotter / P&L and write every day in one Parse ``/batch``.

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
from zoneinfo import ZoneInfo

import orjson
from redis.asyncio import Redis

from app.bus import Keys
from app.journal.client import (
    TradeNoteClient,
    TradeNoteError,
    TradeNoteRejected,
    TradeNoteUser,
)
from app.journal.tradenote import (
    Positions,
    build_day,
    check_day_document,
    close_carried_trade,
    day_fields,
    day_from_unix,
    day_unix,
    merge_executions,
    positions_from_json,
    positions_to_json,
    trading_day,
)
from app.models.orders import Fill

log = logging.getLogger("app.journal")

LOCK_TTL_MS = 30_000
TAKEOVER_GRACE_SECONDS = 2.0
MAX_CASCADE_DAYS = 400


@dataclass(frozen=True)
class JournalConfig:
    username: str
    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("America/New_York"))

    def account_for(self, fill: Fill) -> str:
        """TradeNote account name: each trading account is its own TradeNote account."""
        return fill.account

    def date_unix(self, fill: Fill) -> int:
        return day_unix(trading_day(fill.time, self.tz), self.tz)


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
        config = self.config
        user = await self.user()
        await self.client.ensure_accounts(user, sorted({config.account_for(f) for f in fills}))

        by_day: dict[int, list[Fill]] = defaultdict(list)
        for fill in fills:
            by_day[config.date_unix(fill)].append(fill)
        for d in rebuild_days:
            by_day.setdefault(int(d), [])

        days_raw: Any = await self.redis.zrange(Keys.JOURNAL_DAYS, 0, -1, withscores=True)
        journaled = [int(float(score)) for _, score in days_raw]
        known_days = set(journaled)
        to_build = set(by_day)
        docs = await self.client.find_days(user, sorted(to_build))
        eod_cache: dict[int, Positions] = {}
        built_carry: dict[int, Positions] = {}
        requests: list[dict[str, Any]] = []
        request_days: list[int] = []
        closed_carried: list[tuple[int, str, int]] = []
        stale: list[str] = []  # duplicate day documents, deleted once their merge is written

        cascades = 0
        while to_build:
            day = min(to_build)
            to_build.discard(day)
            earlier = [d for d in known_days | set(built_carry) if d < day]
            carry_in: Positions = {}
            if earlier:
                prev = max(earlier)
                if prev in built_carry:
                    carry_in = built_carry[prev]
                else:
                    carry_in = await self._eod(prev, eod_cache)
            if day not in docs:
                docs.update(await self.client.find_days(user, [day]))
            doc = docs.get(day)
            existing = list((doc or {}).get("executions") or [])
            for dup in (doc or {}).pop("_duplicates", []):
                log.warning(
                    "TradeNote has two documents for day %s: merging %s into %s",
                    day,
                    dup.get("objectId"),
                    (doc or {}).get("objectId"),
                )
                existing = _unique_executions([*existing, *(dup.get("executions") or [])])
                stale.append(str(dup.get("objectId")))
            executions, added = merge_executions(
                existing,
                by_day.get(day, []),
                config.account_for,
                config.tz,
            )
            result.executions_added += added
            build = build_day(executions, carry_in, day)
            built_carry[day] = build.carry_out
            closed_carried.extend(build.closed_carried)
            fields = day_fields(build, day_from_unix(day, config.tz))
            check_day_document(fields, day)
            if doc is None:
                body = {
                    **fields,
                    "user": user.pointer,
                    "ACL": user.acl,
                    "dateUnix": day,
                }
                requests.append({"method": "POST", "path": "classes/trades", "body": body})
            else:
                requests.append(
                    {"method": "PUT", "path": f"classes/trades/{doc['objectId']}", "body": fields}
                )
            request_days.append(day)
            # closing positions changed: the next journaled day must continue from them
            before = (
                positions_to_json(await self._eod(day, eod_cache)) if day in known_days else None
            )
            if before != positions_to_json(build.carry_out):
                later = [d for d in known_days if d > day]
                if later and cascades < MAX_CASCADE_DAYS:
                    nxt = min(later)
                    if nxt not in built_carry:
                        to_build.add(nxt)
                        cascades += 1

        outcomes = await self.client.batch(requests)
        pipe = self.redis.pipeline(transaction=True)
        for day, outcome in zip(request_days, outcomes, strict=True):
            if outcome.error is not None:
                result.rejected[day] = outcome.error
                log.error("TradeNote rejected the day %s: %s", day, outcome.error)
                continue
            result.days_written.append(day)
            pipe.hset(Keys.JOURNAL_EOD, str(day), orjson.dumps(positions_to_json(built_carry[day])))
            pipe.zadd(Keys.JOURNAL_DAYS, {str(day): day})
        await pipe.execute()
        if stale and not result.rejected:
            deletes = [{"method": "DELETE", "path": f"classes/trades/{oid}"} for oid in stale]
            for outcome in await self.client.batch(deletes):
                if outcome.error is not None:
                    log.error("could not delete a duplicate day document: %s", outcome.error)
        await self._close_origins(user, closed_carried, set(result.days_written))
        return result

    async def _eod(self, day: int, cache: dict[int, Positions]) -> Positions:
        if day not in cache:
            raw = await self.redis.hget(Keys.JOURNAL_EOD, str(day))
            cache[day] = positions_from_json(orjson.loads(raw)) if raw else {}
        return cache[day]

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


def _unique_executions(executions: list[Any]) -> list[Any]:
    """First occurrence of each execution (by fill id, else by execution id)."""
    seen: set[str] = set()
    out = []
    for e in executions:
        key = str(e.get("fillId") or e.get("id"))
        if key not in seen:
            seen.add(key)
            out.append(e)
    return out


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)
