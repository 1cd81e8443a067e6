"""Webhook intake, in any number of processes: route, take in durably, wait for decisions.

An alert is taken in by one script: its id is claimed (``Keys.intake``) and it is
appended to the alert stream of every account it routes to, or, if the id was taken
in before, nothing is appended and the first routing is returned. The account's engine,
wherever it runs, decides it and publishes the decision; intake waits a bounded time
for it and otherwise answers ``queued`` (the decision is then queryable).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.autopipeline import AutoPipeline
from app.bus import Keys
from app.execution.accounts import AccountsConfig, RouteTarget, scaled_quantity
from app.models.alerts import Alert, Decision
from app.observability.tracing import inject_context
from app.retry import REDIS_RECONNECT, raise_if_cancelling

STREAM_MAXLEN = 100_000
DUPLICATE_POLL_SECONDS = 0.02
COMMAND_RESULT_TTL = 3600
_TAKE_IN = """
-- KEYS: the intake key, then one alert stream per routed account
-- ARGV: ttl, routing json, maxlen, n fields per entry, then per account its fields
local first = redis.call('GET', KEYS[1])
if first then return first end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[1])
local width = tonumber(ARGV[4])
for i = 2, #KEYS do
  local at = 4 + (i - 2) * width
  local fields = {}
  for f = 1, width do fields[f] = ARGV[at + f] end
  redis.call('XADD', KEYS[i], 'MAXLEN', '~', ARGV[3], '*', unpack(fields))
end
return false
"""

_REPEAT = """
-- KEYS: the repeat key of an id-less alert's content; ARGV: a new id, the window
local first = redis.call('GET', KEYS[1])
if first then return first end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return ARGV[1]
"""

log = logging.getLogger(__name__)


def content_digest(content: bytes) -> str:
    """What names an alert without ``alert_id``: a digest of its whole content."""
    return hashlib.sha256(content).hexdigest()[:32]


@dataclass(slots=True)
class TakenIn:
    """The outcome of taking an alert in: one entry per routed account (None: not
    decided within the wait), and whether an earlier copy had been taken in."""

    alert_id: str
    accounts: list[str]
    decisions: list[Decision | None]
    duplicate: bool


class Waiter:
    """One pub/sub subscription per process: its own decisions channel (engines publish the
    decision of an alert to the channel of the process that took it in, so each process
    parses only its own) and the shared one (command results, replays). Callers wait on a
    future per (account, alert id), or per command id, with no polling."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.channel = Keys.decisions_for(uuid.uuid4().hex[:12])
        self._futures: dict[tuple[str, str], list[asyncio.Future[dict[str, Any]]]] = {}
        self.connected = asyncio.Event()

    def expect(self, keys: Iterable[tuple[str, str]]) -> list[asyncio.Future[dict[str, Any]]]:
        loop = asyncio.get_running_loop()
        out = []
        for key in keys:
            future: asyncio.Future[dict[str, Any]] = loop.create_future()
            self._futures.setdefault(key, []).append(future)
            out.append(future)
        return out

    def forget(
        self, keys: Iterable[tuple[str, str]], futures: Iterable[asyncio.Future[Any]]
    ) -> None:
        drop = set(map(id, futures))
        for key in keys:
            waiting = self._futures.get(key)
            if waiting is None:
                continue
            waiting[:] = [f for f in waiting if id(f) not in drop]
            if not waiting:
                del self._futures[key]

    def _deliver(self, raw: bytes) -> None:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return
        if "command_id" in data:
            key = ("command", str(data["command_id"]))
        else:
            key = (str(data.get("account") or ""), str(data.get("alert_id") or ""))
        for future in self._futures.pop(key, ()):
            if not future.done():
                future.set_result(data)

    async def run(self) -> None:
        """Listen until cancelled; reconnect with capped backoff when Redis goes away."""
        backoff = REDIS_RECONNECT.waits()
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(Keys.DECISIONS_CHANNEL, self.channel)
                self.connected.set()
                backoff.reset()
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self._deliver(message["data"])
            except (RedisError, OSError) as exc:
                raise_if_cancelling()
                self.connected.clear()
                delay = next(backoff)
                log.warning("decision listener: %s; reconnecting in %.1fs", exc, delay)
                await asyncio.sleep(delay)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]


class Intake:
    def __init__(
        self,
        redis: Redis,
        accounts: AccountsConfig,
        waiter: Waiter,
        *,
        alert_ttl: int,
        wait_seconds: float,
        repeat_seconds: int = 10,
    ) -> None:
        self.redis = redis
        self.accounts = accounts
        self.waiter = waiter
        self.alert_ttl = alert_ttl
        self.wait_seconds = wait_seconds
        self.repeat_seconds = repeat_seconds
        pipeline = AutoPipeline(redis)  # concurrent alerts: one write
        self._take_in = pipeline.script(_TAKE_IN)
        self._repeat = pipeline.script(_REPEAT)

    def route(self, alert: Alert) -> list[RouteTarget]:
        return self.accounts.route(alert.strategy)

    async def identify(self, alert: Alert, content: bytes | None = None) -> str:
        """The alert's idempotency id: its ``alert_id``; else its content and the moment it
        arrived, so that only the same content again within ``repeat_seconds`` is the same
        alert (a later ``buy AAPL`` of the same strategy is a new one). ``content`` is the
        body as received, without the passphrase (default: the parsed alert)."""
        if alert.alert_id is not None:
            return alert.alert_id
        digest = content_digest(
            content if content is not None else alert.model_dump_json().encode()
        )
        fresh = f"h-{digest[:20]}-{time.time_ns() // 1_000_000}"
        first = await self._repeat(keys=[Keys.repeat(digest)], args=[fresh, self.repeat_seconds])
        return first.decode() if isinstance(first, bytes) else str(first)

    async def submit(
        self, alert: Alert, targets: list[RouteTarget], content: bytes | None = None
    ) -> TakenIn:
        """Take the alert in for ``targets`` (once, ever, per idempotency id: see
        ``identify``) and wait for the decisions. Raises RedisError when it could not be
        taken in (nothing was)."""
        alert_id = await self.identify(alert, content)
        if alert.alert_id is None:
            alert = alert.model_copy(update={"alert_id": alert_id})
        accounts = [t.account for t in targets]
        keys = [(a, alert_id) for a in accounts]
        futures = self.waiter.expect(keys)  # before the write: a fast decision is not missed
        try:
            trace = [item for pair in inject_context().items() for item in pair]
            args: list[Any] = [self.alert_ttl, orjson.dumps(accounts), STREAM_MAXLEN]
            entries = [self._entry(alert, t, self.waiter.channel, trace) for t in targets]
            args.append(len(entries[0]))
            for entry in entries:
                args += entry
            first = await self._take_in(
                keys=[Keys.intake(alert_id), *(Keys.account(a).alerts_in for a in accounts)],
                args=args,
            )
            duplicate = first is not None
            if duplicate:  # answer with the first copy's routing and stored decisions
                return await self._duplicate(alert_id, [str(a) for a in orjson.loads(first)])
            pending = [f for f in futures if not f.done()]
            if pending:
                await asyncio.wait(pending, timeout=self.wait_seconds)
            decisions: list[Decision | None] = [
                Decision.model_validate(f.result()) if f.done() else None for f in futures
            ]
            if any(d is None for d in decisions):  # a missed message: read what is stored
                stored = await self._stored(alert_id, accounts)
                decisions = [d or s for d, s in zip(decisions, stored, strict=True)]
        finally:
            self.waiter.forget(keys, futures)
        return TakenIn(alert_id, accounts, decisions, False)

    async def _duplicate(self, alert_id: str, accounts: list[str]) -> TakenIn:
        """A copy of an alert taken in before (maybe by another process, whose channel gets
        the decisions): what is stored, read again for up to the wait while undecided."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_seconds
        while True:
            stored = await self._stored(alert_id, accounts)
            if all(d is not None for d in stored) or loop.time() >= deadline:
                break
            await asyncio.sleep(DUPLICATE_POLL_SECONDS)
        decisions = [
            d.model_copy(update={"duplicate": True}) if d is not None else None for d in stored
        ]
        return TakenIn(alert_id, accounts, decisions, True)

    @staticmethod
    def _entry(alert: Alert, target: RouteTarget, reply: str, trace: list[str]) -> list[Any]:
        routed = alert
        if target.multiplier != 1.0:
            routed = alert.model_copy(
                update={"quantity": scaled_quantity(alert.quantity, target.multiplier)}
            )
        sizing = target.sizing.model_dump_json() if target.sizing is not None else ""
        fields: list[Any] = ["alert", routed.model_dump_json(), "sizing", sizing, "reply", reply]
        # the trace context, padded so every entry has the same width
        return fields + trace

    async def _stored(self, alert_id: str, accounts: list[str]) -> list[Decision | None]:
        raws = await self.redis.mget([Keys.account(a).alert(alert_id) for a in accounts])
        out: list[Decision | None] = []
        for raw in raws:
            if raw is None or (isinstance(raw, bytes) and raw.startswith(b"pending:")):
                out.append(None)
            else:
                out.append(Decision.model_validate_json(raw))
        return out

    async def decisions(self, alert_id: str) -> TakenIn | None:
        """What became of an alert taken in (``GET /api/v1/alerts/{id}``)."""
        first = await self.redis.get(Keys.intake(alert_id))
        if first is None:
            return None
        accounts = [str(a) for a in orjson.loads(first)]
        return TakenIn(alert_id, accounts, await self._stored(alert_id, accounts), False)

    # -- admin commands ------------------------------------------------------------
    async def command(
        self, account: str, name: str, args: dict[str, Any], *, wait: float = 5.0
    ) -> dict[str, Any] | None:
        """Send a command to the account's engine (wherever it runs) and wait for its
        result; None if no engine answered in ``wait`` seconds (it stays queued)."""
        command_id = uuid.uuid4().hex
        key = [("command", command_id)]
        futures = self.waiter.expect(key)
        try:
            await self.redis.xadd(
                Keys.account(account).commands,
                {"id": command_id, "name": name, "args": orjson.dumps(args)},
                maxlen=10_000,
                approximate=True,
            )
            done, _ = await asyncio.wait(futures, timeout=wait)
            if done:
                return futures[0].result()
            raw = await self.redis.get(Keys.account(account).command(command_id))
            return orjson.loads(raw) if raw else None
        finally:
            self.waiter.forget(key, futures)
