"""The journal worker: fills stream -> TradeNote, through a Redis consumer group.

A fill is acknowledged (XACK) only after TradeNote has its day document with it, so a
crash, a Redis restart or a TradeNote outage loses nothing: on start the worker first
re-reads its own pending entries, then claims entries idle too long under other
consumers, then reads new ones. Writes are idempotent (executions merge by fill id),
so a batch written but not acknowledged before a kill is written again without
duplicates.

Failures:
- TradeNote down, 5xx, garbage, wrong key, unknown user: every fill waits; the batch is
  retried with capped, jittered exponential backoff, forever (log line + metric).
- TradeNote rejects one day's document (4xx) or an entry cannot be decoded: those
  entries count a failure; after ``max_attempts`` they go to the dead-letter stream
  (``Keys.JOURNAL_DEAD_LETTERS``) with the reason, and are acknowledged there.
  ``trader-ops journal replay --dead-letters`` sends them again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from opentelemetry.trace import SpanKind
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from app.bus import Keys
from app.journal.client import (
    TradeNoteAuthError,
    TradeNoteError,
    TradeNoteRejected,
    TradeNoteUserNotFound,
)
from app.journal.sync import Journal, SyncResult
from app.models.orders import Fill
from app.observability import metrics
from app.observability.tracing import links_from, tracer
from app.retry import RetryPolicy

log = logging.getLogger("app.journal")

DEAD_MAXLEN = 100_000

# A TradeNote or Redis outage: fills wait, the batch is tried again, forever.
JOURNAL_RETRY = RetryPolicy(
    attempts=None, total_timeout=None, wait_initial=0.2, wait_max=30.0, wait_jitter=0.5
)


def default_consumer_name() -> str:
    """Stable across restarts of the same host's worker, so its pending entries resume."""
    return os.environ.get("TRADEROPS_JOURNAL_CONSUMER") or f"journal-{socket.gethostname()}"


@dataclass
class Entry:
    entry_id: str
    fill: Fill | None
    raw: dict[bytes, bytes]
    error: str | None = None


class JournalWorker:
    def __init__(
        self,
        redis: Redis,
        journal: Journal,
        *,
        consumer: str | None = None,
        batch_size: int = 500,
        max_attempts: int = 5,
        block_ms: int = 1000,
        claim_idle_ms: int = 60_000,
        retry: RetryPolicy = JOURNAL_RETRY,
    ) -> None:
        self.redis = redis
        self.journal = journal
        self.consumer = consumer or default_consumer_name()
        self.batch_size = batch_size
        self.max_attempts = max_attempts
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.backoff = retry.waits()
        self._drain_own = True  # first read our own pending entries (restart)
        self._stop = asyncio.Event()
        self.last_error: str | None = None
        self.last_sync: float | None = None
        self.synced_total = 0
        self.healthy = True

    def stop(self) -> None:
        self._stop.set()

    # -- the loop ----------------------------------------------------------------------
    async def run_forever(self) -> None:
        log.info("journal worker %s started", self.consumer)
        while not self._stop.is_set():
            try:
                await self.step()
                self.backoff.reset()
                self.healthy = True
            except asyncio.CancelledError:
                raise
            except (TradeNoteError, RedisError, OSError) as exc:
                await self._failed(exc)
                delay = next(self.backoff)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), timeout=delay)
        log.info("journal worker %s stopped", self.consumer)

    async def _failed(self, exc: Exception) -> None:
        reason = getattr(exc, "reason", None) or (
            "redis" if isinstance(exc, RedisError) else "error"
        )
        metrics.JOURNAL_ERRORS.labels(reason=reason).inc()
        self.healthy = False
        message = str(exc) or type(exc).__name__
        if message != self.last_error or self.backoff.failures == 0:
            log.error("journal: %s (fills wait; retrying with backoff)", message)
        self.last_error = message
        if isinstance(exc, TradeNoteAuthError | TradeNoteUserNotFound):
            self.journal.forget_user()
        if isinstance(exc, ResponseError) and "NOGROUP" in str(exc):
            await self._safe(self.ensure_group())
        await self._safe(
            self.redis.hset(
                Keys.JOURNAL_STATUS,
                mapping={"last_error": message, "last_error_at": f"{time.time():.3f}"},
            )
        )

    @staticmethod
    async def _safe(coro: Any) -> None:
        with contextlib.suppress(RedisError, OSError):
            await coro

    async def ensure_group(self) -> None:
        """Create the consumer group at the start of the stream (everything is journaled
        once; a re-created group re-sends what is there, which is idempotent)."""
        try:
            await self.redis.xgroup_create(
                Keys.FILLS_STREAM, Keys.JOURNAL_GROUP, id="0", mkstream=True
            )
            log.info("created consumer group %s on %s", Keys.JOURNAL_GROUP, Keys.FILLS_STREAM)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def step(self) -> int:
        """Read one batch, journal it, acknowledge it. Returns how many entries were done."""
        entries = await self.read()
        await self.update_backlog()
        if not entries:
            return 0
        return await self.process(entries)

    async def read(self) -> list[Entry]:
        try:
            return await self._read()
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            await self.ensure_group()
            return await self._read()

    async def _read(self) -> list[Entry]:
        if self._drain_own:
            resp: Any = await self.redis.xreadgroup(
                Keys.JOURNAL_GROUP, self.consumer, {Keys.FILLS_STREAM: "0"}, count=self.batch_size
            )
            entries = _entries(resp)
            if entries:
                return entries
            self._drain_own = False
            claimed: Any = await self.redis.xautoclaim(
                Keys.FILLS_STREAM,
                Keys.JOURNAL_GROUP,
                self.consumer,
                min_idle_time=self.claim_idle_ms,
                start_id="0-0",
                count=self.batch_size,
            )
            entries = [_entry(i, f) for i, f in (claimed[1] if claimed else []) if f]
            if entries:
                log.info("claimed %d idle journal entries from other consumers", len(entries))
                return entries
        resp = await self.redis.xreadgroup(
            Keys.JOURNAL_GROUP,
            self.consumer,
            {Keys.FILLS_STREAM: ">"},
            count=self.batch_size,
            block=self.block_ms,
        )
        return _entries(resp)

    async def process(self, entries: Sequence[Entry]) -> int:
        good = [e for e in entries if e.fill is not None]
        bad = [e for e in entries if e.fill is None]
        done = 0
        if bad:
            for entry in bad:
                await self.dead_letter(entry, entry.error or "undecodable entry")
            done += len(bad)
        if not good:
            return done
        started = time.perf_counter()
        fills = [e.fill for e in good if e.fill is not None]
        try:
            # one span per batch, linked to every fill's webhook trace (the context rides in the stream)
            with tracer.start_as_current_span(
                "journal.sync", kind=SpanKind.CONSUMER, links=links_from(e.raw for e in good)
            ):
                result = await self.journal.sync(fills)
        except TradeNoteError:
            self._drain_own = True  # the batch stays pending: read it again first
            raise
        config = self.journal.config
        ok = [e for e in good if e.fill is not None and result.fill_ok(e.fill, config)]
        rejected = [e for e in good if e not in ok]
        done += await self._acknowledge(ok, started)
        if rejected:
            done += await self._retry_or_dead_letter(rejected, result)
        return done

    async def _acknowledge(self, ok: Sequence[Entry], started: float) -> int:
        """The fills TradeNote took: acknowledged, counted, their latency measured."""
        if not ok:
            return 0
        now = time.time()
        pipe = self.redis.pipeline(transaction=True)
        pipe.xack(Keys.FILLS_STREAM, Keys.JOURNAL_GROUP, *[e.entry_id for e in ok])
        pipe.hdel(Keys.JOURNAL_ATTEMPTS, *[e.entry_id for e in ok])
        pipe.hset(
            Keys.JOURNAL_STATUS,
            mapping={"last_sync": f"{now:.3f}", "last_sync_count": str(len(ok))},
        )
        pipe.hincrby(Keys.JOURNAL_STATUS, "synced_total", len(ok))
        await pipe.execute()
        metrics.JOURNAL_SYNCED.inc(len(ok))
        metrics.JOURNAL_LAST_SYNC.set(now)
        metrics.JOURNAL_BATCH_LATENCY.observe(time.perf_counter() - started)
        for entry in ok:
            if entry.fill is not None:
                metrics.JOURNAL_SYNC_LATENCY.observe(max(0.0, now - entry.fill.time))
        self.last_sync = now
        self.synced_total += len(ok)
        return len(ok)

    async def _retry_or_dead_letter(self, rejected: Sequence[Entry], result: SyncResult) -> int:
        """Fills whose day TradeNote rejected: retried (the batch is read again first)
        until ``max_attempts``, then parked in the dead-letter stream."""
        self._drain_own = True
        config = self.journal.config
        done = waiting = 0
        for entry in rejected:
            assert entry.fill is not None
            error = result.rejected[config.date_unix(entry.fill)]
            attempts = int(await self.redis.hincrby(Keys.JOURNAL_ATTEMPTS, entry.entry_id, 1))
            if attempts >= self.max_attempts:
                await self.dead_letter(entry, str(error), attempts=attempts)
                done += 1
            else:
                waiting += 1
        if waiting:
            raise TradeNoteRejected(
                f"TradeNote rejected {waiting} fill(s) (attempt < {self.max_attempts}); "
                "they wait and are retried"
            )
        return done

    async def dead_letter(self, entry: Entry, reason: str, *, attempts: int = 1) -> None:
        """Park an entry in the dead-letter stream (never dropped) and acknowledge it."""
        fields: dict[Any, Any] = {
            "entry_id": entry.entry_id,
            "reason": reason[:500],
            "attempts": str(attempts),
            "at": f"{time.time():.3f}",
        }
        fields.update({k.decode(): v for k, v in entry.raw.items()})
        pipe = self.redis.pipeline(transaction=True)
        pipe.xadd(Keys.JOURNAL_DEAD_LETTERS, fields, maxlen=DEAD_MAXLEN, approximate=True)
        pipe.xack(Keys.FILLS_STREAM, Keys.JOURNAL_GROUP, entry.entry_id)
        pipe.hdel(Keys.JOURNAL_ATTEMPTS, entry.entry_id)
        await pipe.execute()
        label = "decode" if entry.fill is None else "rejected"
        metrics.JOURNAL_DEAD_LETTERED.labels(reason=label).inc()
        log.error("journal: entry %s moved to the dead-letter stream: %s", entry.entry_id, reason)

    async def update_backlog(self) -> None:
        status = await backlog(self.redis)
        metrics.JOURNAL_BACKLOG.set(status["backlog"])
        metrics.JOURNAL_DEAD_LETTERS.set(status["dead_letters"])


async def backlog(redis: Redis) -> dict[str, int]:
    """Fills not yet in TradeNote (pending + never delivered) and dead letters."""
    pending = lag = 0
    try:
        groups: Any = await redis.xinfo_groups(Keys.FILLS_STREAM)
    except ResponseError:
        groups = []
    for group in groups:
        name = group.get("name")
        if name in (Keys.JOURNAL_GROUP, Keys.JOURNAL_GROUP.encode()):
            pending = int(group.get("pending") or 0)
            raw_lag = group.get("lag")
            if raw_lag is None:  # unknown after trimming: count entries after last delivered
                last = group.get("last-delivered-id") or b"0-0"
                after: Any = await redis.xrange(
                    Keys.FILLS_STREAM, min=b"(" + _b(last), max="+", count=1_000_000
                )
                lag = len(after)
            else:
                lag = int(raw_lag)
            break
    else:
        lag = int(await redis.xlen(Keys.FILLS_STREAM))
    dead = int(await redis.xlen(Keys.JOURNAL_DEAD_LETTERS))
    return {"backlog": pending + lag, "pending": pending, "lag": lag, "dead_letters": dead}


def _b(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def _entries(resp: Any) -> list[Entry]:
    out: list[Entry] = []
    for _stream, items in resp or []:
        for entry_id, fields in items:
            if fields:
                out.append(_entry(entry_id, fields))
            else:  # pending, but trimmed from the stream before it was journaled
                eid = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
                out.append(Entry(eid, None, {}, "trimmed from the fills stream before journaled"))
    return out


def _entry(entry_id: Any, fields: dict[bytes, bytes]) -> Entry:
    eid = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    raw = fields.get(b"fill")
    if raw is None:
        return Entry(eid, None, fields, "entry has no 'fill' field")
    try:
        return Entry(eid, Fill.model_validate_json(raw), fields)
    except (ValidationError, ValueError) as exc:
        return Entry(eid, None, fields, f"undecodable fill: {str(exc).splitlines()[0]}")


def decode_fill(raw: bytes | str) -> Fill:
    return Fill.model_validate(orjson.loads(raw))
