"""Redis commands issued in the same event-loop turn go out as one pipeline.

redis-py sends every command on its own (a connection checkout, a write, a read, a
reply parsed per call); at hundreds of alerts a second the engine and the webhook
intake spend more on that than on deciding. Like ioredis' auto-pipelining, commands
queued in the same turn (a batch of alerts decided together, requests that arrived
together) are written together and their replies read together, on one connection, in
the order they were queued. Batches do not wait for each other: commands of different
turns are as unordered as concurrent commands are without batching. Each command still
fails on its own (a script's error is its caller's), and a lost connection fails the
whole batch, as it would have failed each command.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

_Entry = tuple[tuple[Any, ...], "asyncio.Future[Any]", "str | None"]


class AutoPipeline:
    """Batches the commands queued in one event-loop turn."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._queue: list[_Entry] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def command(self, *args: Any, source: str | None = None) -> asyncio.Future[Any]:
        """Queue one command; the future holds its reply (or its error).

        ``source``: the script of an EVALSHA, run with EVAL if Redis no longer has it.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not self._queue:  # the first of this turn: send the batch after the turn
            loop.call_soon(self._flush)
        self._queue.append((args, future, source))
        return future

    def script(self, source: str) -> BatchedScript:
        return BatchedScript(self, source)

    def _flush(self) -> None:
        batch, self._queue = self._queue, []
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._tasks.add(task)  # (a reference, so the task is not collected mid-way)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[_Entry]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for args, _, _ in batch:
            pipe.execute_command(*args)
        try:
            replies: list[Any] = await pipe.execute(raise_on_error=False)
        except Exception as exc:  # the connection went: every reply is lost
            for _, future, _ in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        except BaseException:  # cancelled: the outcome is unknown, as for a lone command
            for _, future, _ in batch:
                future.cancel()
            raise
        for (args, future, source), reply in zip(batch, replies, strict=True):
            if isinstance(reply, NoScriptError) and source is not None:
                try:  # Redis restarted without the script: EVAL loads it (in order)
                    reply = await self.redis.execute_command("EVAL", source, *args[2:])  # type: ignore[no-untyped-call]
                except Exception as exc:
                    reply = exc
            if future.done():  # the caller gave up (cancelled)
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)


class BatchedScript:
    """A Lua script called by EVALSHA through an :class:`AutoPipeline`."""

    def __init__(self, pipeline: AutoPipeline, source: str) -> None:
        self.pipeline = pipeline
        self.source = source
        self.sha = hashlib.sha1(
            source.encode(), usedforsecurity=False
        ).hexdigest()  # Redis script id

    def __call__(self, keys: Sequence[Any] = (), args: Sequence[Any] = ()) -> asyncio.Future[Any]:
        return self.pipeline.command(
            "EVALSHA", self.sha, len(keys), *keys, *args, source=self.source
        )
