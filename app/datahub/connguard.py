"""Slow and greedy clients at the connection level: uvicorn's HTTP/1.1 protocol with
deadlines on reading a request and caps on connections.

uvicorn bounds only the idle time *between* requests (``timeout_keep_alive``), and any
byte cancels that timer: a connection that sends nothing, half a request line or one
byte of a 1,000-byte body is held for ever, one file descriptor each. An ASGI middleware
cannot help with the head (the app is called only once the headers are complete) nor
with a body the app never reads (uvicorn goes on reading it after the answer), so the
deadlines live in the protocol, where the parser says which part is being read:

* head: a new connection, and every request once its first byte arrives, must deliver
  the request line and headers within ``TRADEROPS_HTTP_HEADER_TIMEOUT_SECONDS``, and at
  most ``MAX_HEAD_BYTES`` of them (431 beyond: httptools itself has no limit);
* body: the whole body within ``TRADEROPS_HTTP_BODY_TIMEOUT_SECONDS`` of the headers,
  whether the app reads it or not (408 when nothing was answered yet);
* a body the app refused (answered before it arrived): discarded for at most
  ``LINGER_SECONDS`` (so the client reads the answer, not a reset), then closed;
* connections: at most ``TRADEROPS_HTTP_MAX_CONNECTIONS`` open (503 beyond) and
  ``TRADEROPS_HTTP_MAX_CONNECTIONS_PER_CLIENT`` from one address (429 beyond), refused
  as they are accepted, so the open files stay bounded. Peers in
  ``TRADEROPS_TRUSTED_PROXIES`` are not capped per address: behind nginx every
  connection comes from the proxy, and nginx's ``limit_conn`` caps the real clients.

A WebSocket leaves this protocol once upgraded (its own ping timeout applies then).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from app.config import Settings
from app.observability.metrics import HTTP_CONNECTIONS_CLOSED

log = logging.getLogger(__name__)

MAX_HEAD_BYTES = 64 * 1024  # request line + headers (nginx's default buffers hold 32 KiB)
LINGER_SECONDS = 2.0  # nginx's lingering_timeout is 5 s

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout: float
    body_timeout: float
    max_connections: int
    max_per_client: int
    uncapped: tuple[Network, ...] = ()  # trusted proxies: not capped per address

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        return cls(
            header_timeout=settings.http_header_timeout_seconds,
            body_timeout=settings.http_body_timeout_seconds,
            max_connections=settings.http_max_connections,
            max_per_client=settings.http_max_connections_per_client,
            uncapped=tuple(ipaddress.ip_network(p, strict=False) for p in settings.trusted_proxies),
        )

    def capped(self, address: str) -> bool:
        if not self.uncapped:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return True
        return not any(ip in n for n in self.uncapped)


def _response(status: int, reason: str, text: str) -> bytes:
    body = text.encode()
    return (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode() + body


TOO_MANY = _response(503, "Service Unavailable", "too many connections; retry later")
TOO_MANY_FROM_YOU = _response(429, "Too Many Requests", "too many connections from your address")
HEAD_TOO_LARGE = _response(431, "Request Header Fields Too Large", "request head too large")
BODY_TIMEOUT = _response(408, "Request Timeout", "request body not received in time")


def guarded_protocol(limits: ConnectionLimits) -> type[HttpToolsProtocol]:
    """A protocol class for one server (``uvicorn.Config(http=...)``): the per-address
    counts are shared by that server's connections only."""
    per_client: Counter[str] = Counter()

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        def __init__(
            self,
            config: Config,
            server_state: ServerState,
            app_state: dict[str, Any],
            _loop: asyncio.AbstractEventLoop | None = None,
        ) -> None:
            super().__init__(config, server_state, app_state, _loop)
            self.deadline: asyncio.TimerHandle | None = None
            self.phase = "idle"  # idle | head | body | done | linger | upgraded
            self.head_bytes = 0
            self.counted: str | None = None  # the address this connection counts against

        # -- connection ------------------------------------------------------------
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            peer = self.client[0] if self.client else ""
            if len(self.connections) > limits.max_connections:
                self.refuse(TOO_MANY, "connection_limit")
                return
            if limits.capped(peer):
                self.counted = peer
                per_client[peer] += 1
                if per_client[peer] > limits.max_per_client:
                    self.refuse(TOO_MANY_FROM_YOU, "client_connection_limit")
                    return
            self.arm(limits.header_timeout, "header_timeout")

        def connection_lost(self, exc: Exception | None) -> None:
            self.release()
            super().connection_lost(exc)

        def release(self) -> None:
            """Stop the clock and give the address its slot back (once)."""
            if self.deadline is not None:
                self.deadline.cancel()
                self.deadline = None
            if self.counted is not None:
                per_client[self.counted] -= 1
                if per_client[self.counted] <= 0:
                    del per_client[self.counted]
                self.counted = None

        def handle_websocket_upgrade(self) -> None:
            self.phase = "upgraded"
            self.release()  # the WebSocket protocol owns the transport from here
            super().handle_websocket_upgrade()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.phase == "head":  # still inside a request head after this chunk
                self.head_bytes += len(data)
                if self.head_bytes > MAX_HEAD_BYTES and not self.transport.is_closing():
                    self.refuse(HEAD_TOO_LARGE, "head_too_large")

        # -- parser callbacks ------------------------------------------------------
        def on_message_begin(self) -> None:
            super().on_message_begin()
            self.phase, self.head_bytes = "head", 0
            self.arm(limits.header_timeout, "header_timeout")

        def on_headers_complete(self) -> None:
            self.phase = "body"
            self.arm(limits.body_timeout, "body_timeout")
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            if self.phase == "linger":  # the refused body is all in: close cleanly
                super().on_message_complete()
                self.close("unread_body")
                return
            if self.phase == "body":
                self.phase = "done"
                self.disarm()
            super().on_message_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self.phase == "body" and not self.transport.is_closing():
                # answered before its body arrived (a 401 or 413): discard the rest briefly
                self.phase = "linger"
                self.arm(min(LINGER_SECONDS, limits.body_timeout), "unread_body")
                return
            # waiting for the next request (uvicorn's keep-alive timer closes a silent
            # connection sooner; this one bounds a connection that sends only noise)
            if self.phase == "done" and not self.transport.is_closing():
                self.phase = "idle"
                self.arm(limits.header_timeout, "header_timeout")

        # -- deadlines -------------------------------------------------------------
        def arm(self, seconds: float, reason: str) -> None:
            self.disarm()
            self.deadline = self.loop.call_later(seconds, self.expire, reason)

        def disarm(self) -> None:
            if self.deadline is not None:
                self.deadline.cancel()
                self.deadline = None

        def expire(self, reason: str) -> None:
            self.deadline = None
            if self.transport.is_closing() or self.phase == "upgraded":
                return
            waiting = self.cycle is not None and not self.cycle.response_started
            if reason == "body_timeout" and waiting:  # nothing answered yet: say why
                self.transport.write(BODY_TIMEOUT)
            self.close(reason)

        def refuse(self, answer: bytes, reason: str) -> None:
            self.transport.write(answer)
            self.close(reason)

        def close(self, reason: str) -> None:
            HTTP_CONNECTIONS_CLOSED.labels(reason).inc()
            log.debug("closing %s: %s", self.client, reason)
            self.release()
            self.transport.close()

    return GuardedHttpToolsProtocol


def __getattr__(name: str) -> Any:
    """``WORKER_PROTOCOL``: the protocol for ``trader-ops datahub --workers N``. uvicorn
    imports it by name in each worker process (a class made here cannot be pickled to
    them), so each worker builds it from the settings of its environment: deadlines as
    for one process, caps counted per worker."""
    if name == "WORKER_PROTOCOL":
        from app.config import load_settings

        cls = guarded_protocol(ConnectionLimits.from_settings(load_settings()))
        globals()[name] = cls
        return cls
    raise AttributeError(name)
