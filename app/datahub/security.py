"""Authentication for the webhook (passphrase or HMAC, source allow-list) and the admin API."""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
from collections.abc import Iterable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader

from app.config import Settings
from app.datahub.deps import get_settings

# TradingView's published webhook source addresses.
TRADINGVIEW_IPS = ("52.89.214.238", "34.212.75.30", "54.218.53.128", "52.32.178.7")


def constant_time_equals(a: str, b: str) -> bool:
    return hmac.compare_digest(
        a.encode("utf-8", "surrogateescape"), b.encode("utf-8", "surrogateescape")
    )


def verify_hmac(key: str, body: bytes, signature: str) -> bool:
    """``X-Signature`` is the hex HMAC-SHA256 of the raw body (optionally ``sha256=``-prefixed)."""
    expected = hmac.new(key.encode(), body, hashlib.sha256).hexdigest().encode()
    given = signature.strip().removeprefix("sha256=").lower().encode("utf-8", "surrogateescape")
    return hmac.compare_digest(expected, given)  # bytes: any header text compares, never raises


def sign(key: str, body: bytes) -> str:
    return hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def client_address(request: Request, trusted_proxies: Iterable[str]) -> str:
    """The caller's address; ``X-Forwarded-For`` counts only when the peer is a trusted proxy."""
    peer = request.client.host if request.client else ""
    proxies = tuple(trusted_proxies)
    if not proxies:  # (the common case, on every webhook: nothing to parse)
        return peer
    networks = _networks(proxies)
    hops = [h.strip() for h in request.headers.get("x-forwarded-for", "").split(",") if h.strip()]
    addr = peer
    # walk right to left: the first hop that is not one of our proxies is the client
    while hops and _in(addr, networks):
        addr = hops.pop()
    return addr


@functools.lru_cache(maxsize=16)
def _networks(proxies: tuple[str, ...]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(p, strict=False) for p in proxies]


def _in(addr: str, networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    return any(ip in n for n in networks)


def source_allowed(addr: str, allow: Iterable[str]) -> bool:
    entries = [TRADINGVIEW_IPS if a == "tradingview" else (a,) for a in allow]
    networks = [ipaddress.ip_network(x, strict=False) for group in entries for x in group]
    return not networks or _in(addr, networks)


API_KEY = APIKeyHeader(name="X-API-Key", auto_error=False, description="TRADEROPS_ADMIN_API_KEY")


async def require_admin(
    settings: Annotated[Settings, Depends(get_settings)],
    x_api_key: Annotated[str | None, Security(API_KEY)] = None,
) -> None:
    """Every admin/read endpoint: ``X-API-Key`` compared in constant time."""
    configured = settings.admin_api_key
    if configured is None:
        raise HTTPException(503, "admin API disabled: set TRADEROPS_ADMIN_API_KEY")
    if not x_api_key or not constant_time_equals(x_api_key, configured.get_secret_value()):
        raise HTTPException(
            401, "missing or wrong X-API-Key", headers={"WWW-Authenticate": "ApiKey"}
        )


AdminDep = Depends(require_admin)
