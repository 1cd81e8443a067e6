"""Who may talk to the datahub at all: the Host allow-list, the stream's Origin check and
the metrics token. One pure-ASGI middleware (no per-request task) plus two small checks.

* ``Host``: a DNS-rebinding page reaches ``127.0.0.1`` under its own name; refusing
  unknown ``Host`` headers (``TRADEROPS_ALLOWED_HOSTS``, by default the loopback names
  when the datahub listens on loopback with no ``TRADEROPS_TRUSTED_PROXIES``: behind a
  reverse proxy the public name arrives as Host) keeps such a page out of every route.
* ``Origin`` (WebSocket handshakes only; browsers always send it): the datahub's own
  origin (same host as the ``Host`` header) or one of ``TRADEROPS_ALLOWED_ORIGINS``.
* ``/metrics`` with ``TRADEROPS_METRICS_TOKEN`` set: ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from urllib.parse import urlsplit

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from app.config import Settings
from app.datahub.security import constant_time_equals

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def effective_allowed_hosts(settings: Settings) -> frozenset[str] | None:
    """Host names (lower case, no port) the datahub answers; ``None`` = any."""
    if settings.allowed_hosts:
        if "*" in settings.allowed_hosts:
            return None
        return frozenset(h.lower().strip("[]") for h in settings.allowed_hosts)
    if _is_loopback(settings.http_host) and not settings.trusted_proxies:
        return frozenset(LOOPBACK_NAMES)
    return None  # all interfaces, or behind a proxy (nginx picks the Host): any


def host_name(header: str) -> str:
    """``example.com:8000`` -> ``example.com``; ``[::1]:8000`` -> ``::1``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    if header.count(":") == 1:
        return header.split(":", 1)[0]
    return header


def origin_allowed(headers: Mapping[str, str], extra: list[str]) -> bool:
    """No Origin (not a browser), the datahub's own origin, or a configured one."""
    origin = headers.get("origin")
    if origin is None:
        return True
    if origin.rstrip("/") in (o.rstrip("/") for o in extra):
        return True
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    return parts.netloc.lower() == headers.get("host", "").strip().lower()


def metrics_authorized(headers: Mapping[str, str], settings: Settings) -> bool:
    token = settings.metrics_token
    if token is None:
        return True
    given = headers.get("authorization", "")
    scheme, _, value = given.partition(" ")
    return scheme.lower() == "bearer" and constant_time_equals(
        value.strip(), token.get_secret_value()
    )


class HostAllowList:
    """Refuse requests and WebSocket handshakes whose ``Host`` is not allowed (400)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.allowed = effective_allowed_hosts(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.allowed is None or scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = ""
        for name, value in scope["headers"]:
            if name == b"host":
                host = value.decode("latin-1")
                break
        if host_name(host) in self.allowed:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": "host not allowed"})
            return
        body = orjson.dumps(
            {"detail": "Host header not allowed (TRADEROPS_ALLOWED_HOSTS)"},
        )
        await send(
            {
                "type": "http.response.start",
                "status": 400,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
