"""Account engines, one writer each: hold the account's lease, consume its streams.

Every process that runs execution (``trader-ops execution``, or a datahub with
``TRADEROPS_EXECUTION_IN_DATAHUB``) runs one ``AccountRunner`` per declared account; for
each account exactly one of them holds the lease and runs the engine, the others wait
to take over. The holder reads the account's command and alert streams through one
consumer group and acknowledges an entry only once its decision is stored, so a holder
killed mid-batch leaves its entries pending, and the next holder (same consumer name)
reads them first. Decisions are idempotent per alert id: nothing is placed twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from app.brokers.base import BrokerError
from app.bus import Keys
from app.execution.accounts import AccountConfig
from app.execution.decisions import RetryLaterError, alert_key
from app.execution.engine import ExecutionEngine
from app.execution.intake import COMMAND_RESULT_TTL
from app.execution.lease import AccountLease
from app.execution.sizing import SizingRule
from app.execution.store import FencedError
from app.models.alerts import Alert, Decision
from app.models.market import Quote
from app.observability.tracing import extract_context, get_tracer
from app.retry import REDIS_RECONNECT, raise_if_cancelling

log = logging.getLogger(__name__)

EngineFactory = Callable[[AccountConfig, str | None], ExecutionEngine]  # (account, lease value)
_TRACER = get_tracer(__name__)
BATCH = 128
MAX_ATTEMPTS = 5
SNAPSHOT_EVERY = 1.0


class LeaseLostError(Exception):
    pass


class AccountRunner:
    def __init__(
        self,
        account: AccountConfig,
        redis: Redis,
        factory: EngineFactory,
        *,
        instance: str,
        lease_seconds: float,
    ) -> None:
        self.account = account
        self.redis = redis
        self.factory = factory
        self.keys = Keys.account(account.id)
        self.lease = AccountLease(redis, account.id, instance, lease_seconds)
        self.lease_seconds = lease_seconds
        self.engine: ExecutionEngine | None = None  # set while we hold the account
        self.attempts: dict[str, int] = {}  # alert id -> failed attempts (a bug, not Redis)
        self.stopping = False

    async def run(self) -> None:
        """Hold the account whenever nobody else does, until cancelled."""
        backoff = REDIS_RECONNECT.waits()
        while not self.stopping:
            try:
                value = await self.lease.acquire()
            except (RedisError, OSError) as exc:
                raise_if_cancelling()
                wait = next(backoff)
                log.warning("account %s: lease: %s (retry in %.1fs)", self.account.id, exc, wait)
                await asyncio.sleep(wait)
                continue
            backoff.reset()
            if value is None:
                await asyncio.sleep(self.lease_seconds / 5)
                continue
            log.info("account %s: this process holds it (lease %s)", self.account.id, value)
            try:
                await self._hold(value)
            except (LeaseLostError, FencedError):
                log.warning("account %s: lease lost; another process holds it", self.account.id)
            except (RedisError, OSError) as exc:
                raise_if_cancelling()
                log.warning("account %s: engine stopped on a Redis error: %s", self.account.id, exc)
                await asyncio.sleep(0.5)
            except Exception:  # a bug must not leave the account without an engine
                log.exception("account %s: engine failed; restarting it in 2 s", self.account.id)
                await asyncio.sleep(2.0)

    async def _hold(self, value: str) -> None:
        engine = self.factory(self.account, value)
        lost = asyncio.Event()
        renewing = asyncio.create_task(self._renew(lost), name=f"lease-{self.account.id}")
        try:
            await engine.start()
            self.engine = engine
            await self._ensure_groups()
            consume = asyncio.create_task(self._consume(engine))
            snapshots = asyncio.create_task(self._snapshots(engine))
            waiting = asyncio.create_task(lost.wait())
            try:
                done, _ = await asyncio.wait(
                    {consume, waiting}, return_when=asyncio.FIRST_COMPLETED
                )
            finally:  # cancelled (a stop) or done: never leave a consumer behind
                for task in (consume, snapshots, waiting):
                    task.cancel()
                await asyncio.gather(consume, snapshots, waiting, return_exceptions=True)
            if consume in done and not consume.cancelled() and consume.exception() is not None:
                raise consume.exception()  # type: ignore[misc]
            raise LeaseLostError(self.account.id)
        finally:
            self.engine = None
            renewing.cancel()
            with contextlib.suppress(BaseException):
                await renewing
            with contextlib.suppress(Exception):
                await engine.close()
            if self.stopping:
                with contextlib.suppress(RedisError, OSError):
                    await self.lease.release()

    async def _renew(self, lost: asyncio.Event) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                if not await self.lease.renew():
                    lost.set()
                    return
            except (RedisError, OSError) as exc:  # writes are fenced meanwhile
                raise_if_cancelling()
                log.warning("account %s: lease renewal failed: %s", self.account.id, exc)

    async def _ensure_groups(self) -> None:
        for stream in (self.keys.commands, self.keys.alerts_in):
            try:  # from the start: alerts taken in before any engine ran are decided
                await self.redis.xgroup_create(stream, Keys.EXECUTION_GROUP, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def _snapshots(self, engine: ExecutionEngine) -> None:
        while True:
            try:
                await engine.publish_snapshot()
            except FencedError:
                return
            except (RedisError, OSError) as exc:
                raise_if_cancelling()
                log.debug("snapshot not published: %s", exc)
            await asyncio.sleep(SNAPSHOT_EVERY)

    async def _consume(self, engine: ExecutionEngine) -> None:
        cursor = "0"  # first what a previous holder (or we) left pending, then new entries
        acks: dict[str, list[bytes]] = {}  # decided entries, acknowledged with the next read
        while True:
            try:
                pipe = self.redis.pipeline(transaction=False)
                for stream, ids in acks.items():
                    pipe.xack(stream, Keys.EXECUTION_GROUP, *ids)
                pipe.xreadgroup(
                    Keys.EXECUTION_GROUP,
                    Keys.EXECUTION_CONSUMER,
                    {self.keys.commands: cursor, self.keys.alerts_in: cursor},
                    count=BATCH,
                    block=None if cursor == "0" else 1000,
                )
                reply: Any = (await pipe.execute())[-1]
                acks = {}
            except ResponseError as exc:  # the streams were deleted (FLUSHALL, a restore)
                log.warning("account %s: %s; recreating its streams", self.account.id, exc)
                await self._ensure_groups()
                cursor, acks = "0", {}
                continue
            entries = {_text(stream): items for stream, items in reply or []}
            commands = entries.get(self.keys.commands, [])
            alerts = entries.get(self.keys.alerts_in, [])
            if cursor == "0" and not commands and not alerts:
                cursor = ">"
                continue
            failed = 0
            for entry_id, fields in commands:  # commands first: a HALT jumps the queue
                if await self._command(engine, fields):
                    acks.setdefault(self.keys.commands, []).append(entry_id)
                else:
                    failed += 1
            if alerts:
                fresh = cursor == ">"  # first delivery (a pending one may be half-done)
                results = await asyncio.gather(*(self._alert(engine, f, fresh) for _, f in alerts))
                done = [eid for (eid, _), ok in zip(alerts, results, strict=True) if ok]
                failed += len(alerts) - len(done)
                if done:  # (an ack lost with Redis only means a redelivery: decided once)
                    acks.setdefault(self.keys.alerts_in, []).extend(done)
            if failed:  # retry what failed from the pending list, after a pause
                await asyncio.sleep(0.5)
                cursor = "0"
            elif cursor == "0" and len(commands) < BATCH and len(alerts) < BATCH:
                cursor = ">"

    async def _alert(
        self, engine: ExecutionEngine, fields: dict[bytes, bytes], fresh: bool = False
    ) -> bool:
        """Decide one entry; True when its decision is stored (ack it)."""
        try:
            alert = Alert.model_validate_json(fields[b"alert"])
            raw_sizing = fields.get(b"sizing") or b""
            rule = SizingRule.model_validate_json(raw_sizing) if raw_sizing else None
            reply = _text(fields[b"reply"]) if b"reply" in fields else None
        except (KeyError, ValueError) as exc:
            log.error("account %s: unreadable alert entry dropped: %s", self.account.id, exc)
            return True
        try:  # one trace from the webhook through the engine (context rides in the entry)
            with _TRACER.start_as_current_span(
                "execution.decide",
                context=extract_context(fields),
                attributes={"account": self.account.id, "alert.id": alert.alert_id or ""},
            ):
                decision = await engine.handle_alert(alert, rule, fresh=fresh, reply=reply)
        except FencedError:
            raise
        except RetryLaterError as exc:
            log.warning("account %s: alert %s later: %s", self.account.id, alert.alert_id, exc)
            return False
        except (RedisError, OSError) as exc:
            log.warning(
                "account %s: alert %s not decided: %s", self.account.id, alert.alert_id, exc
            )
            return False
        except Exception:  # a bug: retried a few times, then recorded as denied (not lost)
            return await self._failed(engine, alert)
        if decision.reason == "in_progress":  # a claim of a dead holder's, not yet lapsed
            return False
        if decision.duplicate:  # decided before (a replay): tell whoever waits again
            await self._publish(decision.model_dump_json().encode())
        return True

    async def _failed(self, engine: ExecutionEngine, alert: Alert) -> bool:
        """An alert the engine raised on: retried up to ``MAX_ATTEMPTS`` times, then stored
        as denied (check ``engine``), so the stream moves on and the trader is told."""
        key = alert_key(alert)
        self.attempts[key] = tries = self.attempts.get(key, 0) + 1
        log.exception("account %s: alert %s failed (attempt %d)", self.account.id, key, tries)
        if tries < MAX_ATTEMPTS:
            return False
        del self.attempts[key]
        denial = Decision(
            alert_id=key,
            account=self.account.id,
            status="denied",
            symbol=alert.ticker,
            action=alert.action.value,
            strategy=alert.strategy,
            check="engine",
            reason="internal_error",
            message=f"the engine failed on this alert {tries} times; nothing placed (see its log)",
            time=time.time(),
        )
        await engine.store.save_alert([], denial, ttl=engine.alert_ttl, token="")
        return True

    async def _command(self, engine: ExecutionEngine, fields: dict[bytes, bytes]) -> bool:
        command_id = _text(fields.get(b"id", b""))
        name = _text(fields.get(b"name", b""))
        key = self.keys.command(command_id)
        if await self.redis.exists(key):  # done before (a replay after a takeover)
            return True
        try:
            args = orjson.loads(fields.get(b"args", b"{}"))
            result: dict[str, Any] = {"ok": True, **await _run_command(engine, name, args)}
            await engine.publish_snapshot()  # readers see the new state at once
        except (FencedError, RedisError, OSError):
            raise
        except KeyError as exc:
            result = {"ok": False, "status": 404, "detail": str(exc.args[0])}
        except ValueError as exc:
            result = {"ok": False, "status": 409, "detail": str(exc)}
        except BrokerError as exc:
            result = {"ok": False, "status": 502, "detail": f"broker refused: {exc}"}
        result |= {"command_id": command_id, "account": self.account.id}
        raw = orjson.dumps(result)
        await self.redis.set(key, raw, ex=COMMAND_RESULT_TTL)
        await self._publish(raw)
        return True

    async def _publish(self, raw: bytes) -> None:
        await self.redis.publish(Keys.DECISIONS_CHANNEL, raw)


async def _run_command(engine: ExecutionEngine, name: str, args: dict[str, Any]) -> dict[str, Any]:
    if name == "kill-switch":
        state = await engine.set_kill_switch(args["state"], args.get("reason"))
        flattened: list[Decision] = []
        if args.get("flatten"):
            flattened = await engine.flatten(reason="kill-switch")
        return {
            "state": state.value,
            "flatten": [d.model_dump(exclude_none=True) for d in flattened],
        }
    if name == "flatten":
        decisions = await engine.flatten(args.get("symbol"))
        return {"orders": [d.model_dump(exclude_none=True) for d in decisions]}
    if name == "cancel":
        try:
            order = await engine.cancel(args["order_id"])
        except KeyError:
            raise KeyError(f"no order {args['order_id']}") from None
        return {"order": order.model_dump(mode="json")}
    if name == "reset-breaker":
        engine.risk.reset_breaker()
        return {}
    raise ValueError(f"unknown command {name!r}")


class ExecutionService:
    """Runners for every account; feeds quotes to the engines this process holds."""

    def __init__(
        self,
        accounts: list[AccountConfig],
        redis: Redis,
        factory: EngineFactory,
        *,
        lease_seconds: float,
    ) -> None:
        # host and pid in the lease value: `GET /api/v1/accounts` says who holds what
        self.instance = f"{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:6]}"
        self.runners = {
            a.id: AccountRunner(
                a, redis, factory, instance=self.instance, lease_seconds=lease_seconds
            )
            for a in accounts
        }
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(r.run(), name=f"account-{a}") for a, r in self.runners.items()
        ]

    def engines(self) -> list[ExecutionEngine]:
        return [r.engine for r in self.runners.values() if r.engine is not None]

    def engine(self, account: str) -> ExecutionEngine | None:
        runner = self.runners.get(account)
        return runner.engine if runner is not None else None

    async def on_quote(self, quote: Quote) -> None:
        for engine in self.engines():
            await engine.on_quote(quote)

    async def stop(self) -> None:
        """Hand every account over at once (release the leases), engines closed."""
        for runner in self.runners.values():
            runner.stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for runner in self.runners.values():
            with contextlib.suppress(RedisError, OSError):
                await runner.lease.release()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
