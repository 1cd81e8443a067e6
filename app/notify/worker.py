"""The trade-notification worker.

Reads the fills stream, the alerts (decisions) stream and the notify outbox with its own
consumer group (``Keys.NOTIFY_GROUP``, created at the streams' end: history is not
re-announced). Events of the enabled kinds are gathered for ``coalesce_seconds`` from the
first one, then sent as one message per kind: 200 denials in a second are one message.
Entries are acknowledged only once their message was delivered (a restart re-reads what
was pending), or once it was given up after ``max_attempts`` tries with capped
exponential backoff: then it is written to ``Keys.NOTIFY_DEAD_LETTERS`` and counted in
``traderops_notify_dead_letters_total``. The worker never touches the webhook path: a
dead channel only grows the streams' pending lists.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Iterable
from typing import Any, Protocol

import stamina
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from app.bus import Keys
from app.notify.messages import Event, parse, render
from app.observability.metrics import (
    NOTIFY_DEAD_LETTERS,
    NOTIFY_EVENTS,
    NOTIFY_FAILURES,
    NOTIFY_SENT,
)
from app.retry import raise_if_cancelling

log = logging.getLogger(__name__)

STREAMS = (Keys.FILLS_STREAM, Keys.ALERTS_STREAM, Keys.NOTIFY_OUTBOX)
DEAD_MAXLEN = 10_000


class DeliveryError(Exception):
    """The channel did not take the message (retried)."""


class Channel(Protocol):
    async def send(self, title: str, body: str) -> None:
        """Deliver one message or raise DeliveryError."""


class NotifyWorker:
    def __init__(
        self,
        redis: Redis,
        channel: Channel,
        *,
        kinds: Iterable[str],
        coalesce_seconds: float = 2.0,
        max_attempts: int = 30,
        backoff_initial_seconds: float = 0.5,
        backoff_max_seconds: float = 60.0,
        consumer: str = "notifier",
        read_count: int = 1000,
    ) -> None:
        self.redis = redis
        self.channel = channel
        self.kinds = frozenset(kinds)
        self.coalesce = coalesce_seconds
        self.max_attempts = max_attempts
        self.backoff_initial = backoff_initial_seconds
        self.backoff_max = backoff_max_seconds
        self.consumer = consumer
        self.read_count = read_count

    async def ensure_groups(self) -> None:
        for stream in STREAMS:
            try:
                await self.redis.xgroup_create(stream, Keys.NOTIFY_GROUP, id="$", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def _read(self, ids: dict[str, str], block_ms: int | None) -> list[Event | str]:
        """Events, and for entries that notify nothing "stream|id" to ack at once."""
        reply: Any = await self.redis.xreadgroup(
            Keys.NOTIFY_GROUP,
            self.consumer,
            ids,  # type: ignore[arg-type]
            count=self.read_count,
            block=block_ms,
        )
        out: list[Event | str] = []
        for stream_raw, entries in reply or []:
            stream = stream_raw.decode() if isinstance(stream_raw, bytes) else stream_raw
            for entry_raw, fields in entries:
                entry_id = entry_raw.decode() if isinstance(entry_raw, bytes) else entry_raw
                event = parse(stream, entry_id, fields or {})
                if event is not None and event.kind in self.kinds:
                    out.append(event)
                else:
                    out.append(f"{stream}|{entry_id}")
        return out

    async def _ack(self, pairs: Iterable[tuple[str, str]]) -> None:
        by_stream: dict[str, list[str]] = defaultdict(list)
        for stream, entry_id in pairs:
            by_stream[stream].append(entry_id)
        for stream, ids in by_stream.items():
            await self.redis.xack(stream, Keys.NOTIFY_GROUP, *ids)

    async def _deliver_one(self, kind: str, events: list[Event]) -> None:
        title, body = render(kind, events)
        try:
            async for attempt in stamina.retry_context(
                on=DeliveryError,
                attempts=self.max_attempts,
                timeout=None,
                wait_initial=self.backoff_initial,
                wait_max=self.backoff_max,
            ):
                with attempt:
                    try:
                        await self.channel.send(title, body)
                    except DeliveryError:
                        NOTIFY_FAILURES.labels(kind).inc()
                        raise
        except DeliveryError as exc:
            log.error(
                "notify: %s message given up after %d attempts: %s", kind, self.max_attempts, exc
            )
            await self.redis.xadd(
                Keys.NOTIFY_DEAD_LETTERS,
                {"kind": kind, "title": title, "body": body, "time": repr(time.time())},
                maxlen=DEAD_MAXLEN,
                approximate=True,
            )
            NOTIFY_DEAD_LETTERS.labels(kind).inc()
        else:
            NOTIFY_SENT.labels(kind).inc()
            NOTIFY_EVENTS.labels(kind).inc(len(events))
        await self._ack((e.stream, e.entry_id) for e in events)

    async def deliver(self, events: list[Event]) -> None:
        """One message per kind, in the order the kinds first appeared."""
        by_kind: dict[str, list[Event]] = {}
        for e in events:
            by_kind.setdefault(e.kind, []).append(e)
        for kind, group in by_kind.items():
            await self._deliver_one(kind, group)

    async def run_forever(self) -> None:
        await self.ensure_groups()
        # Entries read before a restart but never acknowledged come first.
        ids = dict.fromkeys(STREAMS, "0")
        batch: list[Event] = []
        deadline: float | None = None
        log.info("notify: worker started (kinds: %s)", ", ".join(sorted(self.kinds)))
        while True:
            try:
                ids, batch, deadline = await self._round(ids, batch, deadline)
            except (RedisError, OSError) as exc:  # Redis restarting: keep what was read, retry
                raise_if_cancelling()  # (redis-py reports a cancel as a lost connection)
                log.warning("notify: redis unavailable, retrying in 1 s: %s", exc)
                await asyncio.sleep(1.0)

    async def _round(
        self, ids: dict[str, str], batch: list[Event], deadline: float | None
    ) -> tuple[dict[str, str], list[Event], float | None]:
        """One read, and one delivery when the coalescing window is over."""
        now = time.monotonic()
        if deadline is None:
            block: int | None = 1000
        else:
            block = min(1000, max(1, int((deadline - now) * 1000)))
        items = await self._read(ids, None if ids[STREAMS[0]] == "0" else block)
        if ids[STREAMS[0]] == "0":
            ids = dict.fromkeys(STREAMS, ">")
        skip = []
        for item in items:
            if isinstance(item, str):
                stream, entry_id = item.split("|", 1)
                skip.append((stream, entry_id))
            else:
                batch.append(item)
                if deadline is None:
                    deadline = time.monotonic() + self.coalesce
        if skip:
            await self._ack(skip)
        if batch and deadline is not None and time.monotonic() >= deadline:
            await self.deliver(batch)
            batch, deadline = [], None
        return ids, batch, deadline


class AppriseChannel:
    """Every configured apprise URL; a message counts as delivered when all took it."""

    def __init__(self, urls: list[str], timeout_seconds: float = 10.0) -> None:
        import apprise

        self.apobj = apprise.Apprise()
        for url in urls:
            if not self.apobj.add(url):
                scheme = url.split("://", 1)[0]
                raise ValueError(f"TRADEROPS_NOTIFY_URLS: not a valid apprise URL ({scheme}://...)")
        self.timeout = timeout_seconds

    async def send(self, title: str, body: str) -> None:
        try:
            ok = await asyncio.wait_for(
                asyncio.to_thread(self.apobj.notify, body=body, title=title), self.timeout * 3
            )
        except TimeoutError as exc:
            raise DeliveryError("channel timed out") from exc
        if not ok:
            raise DeliveryError("a channel refused or could not be reached")
