"""WebSocket quote fan-out.

One Redis subscription per process feeds every local client. Each client has a
conflating buffer (latest quote per symbol) drained by its own sender task, so a
slow client only ever falls behind itself: the hub never awaits a client, and a
client whose socket stays blocked past the send timeout is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.websockets import WebSocket

from app.bus import Keys
from app.observability.metrics import QUOTES_RECEIVED, WS_CLIENTS, WS_DROPPED, WS_MESSAGES
from app.retry import REDIS_RECONNECT, RetryPolicy, raise_if_cancelling

log = logging.getLogger(__name__)


class StreamClient:
    def __init__(self, ws: WebSocket, hub: QuoteHub) -> None:
        self.ws = ws
        self.hub = hub
        self.symbols: set[str] = set()
        self.pending: dict[str, Any] = {}  # symbol -> latest quote dict (conflated)
        self.control: deque[bytes] = deque(maxlen=100)
        self.wake = asyncio.Event()
        self.closed = False
        self.private = False  # presented the admin key: receives order and fill events
        self.lookups = 0  # symbols this client made the datahub ask the feed about
        self.close_code: tuple[int, str] | None = None  # close once the control queue is sent

    def push_quote(self, symbol: str, quote: Any) -> None:
        self.pending[symbol] = quote
        self.wake.set()

    def send_control(self, message: dict[str, Any]) -> None:
        self.control.append(orjson.dumps(message))
        self.wake.set()

    def close_after_control(self, code: int, reason: str) -> None:
        """Close cleanly (a close frame with ``code``) after the queued messages are sent."""
        self.close_code = (code, reason)
        self.wake.set()

    async def sender(self, heartbeat: float, send_timeout: float) -> None:
        """Drain control messages and conflated quotes; heartbeat when idle.

        ``asyncio.timeout`` rather than ``wait_for``: no extra task per wake-up and per
        frame, which is most of the fan-out's cost at 200 clients x 100 ticks/s.
        """
        ws = self.ws
        while not self.closed:
            if not self.wake.is_set():
                try:
                    async with asyncio.timeout(heartbeat):
                        await self.wake.wait()
                except TimeoutError:
                    self.control.append(orjson.dumps({"type": "heartbeat", "time": time.time()}))
            self.wake.clear()
            frames = [frame.decode() for frame in self.control]
            self.control.clear()
            closing = self.close_code
            if self.pending and closing is None:
                batch = list(self.pending.values())
                self.pending.clear()
                frames.append(self.hub.quotes_frame(batch))
            for frame in frames:
                try:
                    async with asyncio.timeout(send_timeout):
                        await ws.send_text(frame)
                except TimeoutError:
                    WS_DROPPED.labels("slow").inc()
                    log.info("dropping slow stream client")
                    self.closed = True
                    with contextlib.suppress(Exception):
                        await ws.close(code=1013, reason="too slow")
                    return
            WS_MESSAGES.inc(len(frames))
            if closing is not None:
                self.closed = True
                with contextlib.suppress(Exception):
                    await ws.close(code=closing[0], reason=closing[1])
                return


class QuoteHub:
    def __init__(self, redis: Redis, *, retry: RetryPolicy = REDIS_RECONNECT) -> None:
        self.redis = redis
        self.subscribers: dict[str, set[StreamClient]] = {}
        self.clients: set[StreamClient] = set()
        self.retry = retry
        self.connected = asyncio.Event()
        self.stopping = False
        self.listeners: list[Callable[[dict[str, Any]], None]] = []  # in-process quote consumers
        # this tick's encoded quote frames, by the identity of the quotes in them: clients
        # that keep up with the same symbols share one frame (cleared on every tick; the
        # stored batch keeps those quote objects, and so their ids, alive until then)
        self._frames: dict[tuple[int, ...], tuple[list[Any], str]] = {}

    def quotes_frame(self, batch: list[Any]) -> str:
        """The ``quotes`` message for ``batch``, encoded once per tick per distinct batch."""
        key = tuple(map(id, batch))
        cached = self._frames.get(key)
        if cached is not None:
            return cached[1]
        frame = '{"type":"quotes","data":' + orjson.dumps(batch).decode() + "}"
        self._frames[key] = (batch, frame)
        return frame

    def add(self, client: StreamClient) -> None:
        self.clients.add(client)
        WS_CLIENTS.set(len(self.clients))

    def remove(self, client: StreamClient) -> None:
        client.closed = True
        client.wake.set()
        self.clients.discard(client)
        for symbol in client.symbols:
            subs = self.subscribers.get(symbol)
            if subs is not None:
                subs.discard(client)
                if not subs:
                    del self.subscribers[symbol]
        WS_CLIENTS.set(len(self.clients))

    def subscribe(self, client: StreamClient, symbols: list[str]) -> None:
        for symbol in symbols:
            client.symbols.add(symbol)
            self.subscribers.setdefault(symbol, set()).add(client)

    def unsubscribe(self, client: StreamClient, symbols: list[str]) -> None:
        for symbol in symbols:
            client.symbols.discard(symbol)
            client.pending.pop(symbol, None)
            subs = self.subscribers.get(symbol)
            if subs is not None:
                subs.discard(client)
                if not subs:
                    del self.subscribers[symbol]

    def dispatch(self, raw: bytes) -> None:
        """A fan-out message: one quote object or a batch (JSON array) of them."""
        decoded = orjson.loads(raw)
        batch = decoded if isinstance(decoded, list) else [decoded]
        self._frames.clear()
        QUOTES_RECEIVED.inc(len(batch))
        listeners, subscribers = self.listeners, self.subscribers
        for quote in batch:
            symbol = quote["symbol"]
            for listener in listeners:
                listener(quote)
            subs = subscribers.get(symbol)
            if subs:
                for client in subs:
                    client.push_quote(symbol, quote)

    def broadcast(self, raw: bytes) -> None:
        """Order and fill events go only to clients that authenticated with the admin key."""
        for client in self.clients:
            if client.private:
                client.control.append(raw)
                client.wake.set()

    async def run(self) -> None:
        """Subscribe and dispatch forever; resubscribe with backoff when Redis drops."""
        backoff = self.retry.waits()
        while not self.stopping:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(Keys.QUOTES_CHANNEL, Keys.EVENTS_CHANNEL)
                self.connected.set()
                backoff.reset()
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message["type"] == "message":
                        try:
                            if message["channel"] == Keys.EVENTS_CHANNEL.encode():
                                self.broadcast(message["data"])
                            else:
                                self.dispatch(message["data"])
                        except (orjson.JSONDecodeError, KeyError, TypeError):
                            log.warning("ignoring malformed quote on the fan-out channel")
            except (RedisError, OSError) as exc:
                if self.stopping:
                    raise asyncio.CancelledError from exc  # shutting down, not a Redis failure
                raise_if_cancelling()
                self.connected.clear()
                delay = next(backoff)
                log.warning("quote subscription lost, retrying in %.1fs: %s", delay, exc)
                await asyncio.sleep(delay)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
