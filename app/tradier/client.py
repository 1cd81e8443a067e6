"""Low-level Tradier REST client, shared by the market-data feed and the broker.

Why it exists: every Tradier call needs the same care -- bearer token and
``Accept: application/json`` (Tradier's default answer is XML), a timeout, one
pooled connection set, the ``X-Ratelimit-*`` quota honoured before we get a 429,
and retries with capped, jittered backoff for what is safe to retry. Callers get
decoded JSON or a ``TradierError`` whose message a user can act on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from types import TracebackType
from typing import Any

import aiohttp
import orjson
from pydantic import SecretStr

from app.retry import RetryPolicy as RetryPolicy  # re-exported: the connectors take one
from app.tradier.normalize import error_message

PRODUCTION_URL = "https://api.tradier.com/v1"
SANDBOX_URL = "https://sandbox.tradier.com/v1"
STREAM_URL = "wss://ws.tradier.com/v1/markets/events"

# Slept past a quota reset, so timer granularity (and a little clock skew) cannot
# land the next call just before it.
QUOTA_MARGIN = 0.05

log = logging.getLogger(__name__)

Params = Mapping[str, str | int | float | None]


class TradierError(Exception):
    """Tradier could not answer; ``str(exc)`` is meant for the user."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class TradierAuthError(TradierError):
    """401/403: retrying cannot help, the token or its permissions must change."""


class TradierRetryableError(TradierError):
    """429, 5xx, timeouts and connection errors: worth another attempt."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


# Every Tradier REST call; the stream reconnect takes its waits from the same numbers.
TRADIER_RETRY = RetryPolicy(
    attempts=4, total_timeout=20.0, wait_initial=0.25, wait_max=5.0, wait_jitter=0.5
)


@dataclass(frozen=True, slots=True)
class RateLimit:
    """The last ``X-Ratelimit-*`` headers seen for one quota bucket."""

    allowed: int | None
    used: int | None
    available: int
    expiry: float | None  # epoch seconds when the window resets


def quota_bucket(method: str, path: str) -> str:
    """Tradier meters market data, trading and everything else separately."""
    if path.startswith("/markets"):
        return "market-data"
    if method != "GET" and "/orders" in path:
        return "trading"
    return "standard"


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    try:
        return int(headers[name])
    except (KeyError, ValueError):
        return None


class TradierClient:
    """One pooled ``aiohttp.ClientSession``; safe to share between tasks."""

    def __init__(
        self,
        token: str | SecretStr,
        base_url: str = PRODUCTION_URL,
        *,
        timeout: float = 5.0,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._token = token if isinstance(token, SecretStr) else SecretStr(token)
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retry = retry or TRADIER_RETRY
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None
        self.limits: dict[str, RateLimit] = {}
        self._blocked_until: dict[str, float] = {}

    def __repr__(self) -> str:  # never the token
        return f"TradierClient(base_url={self.base_url!r})"

    # -- lifecycle ----------------------------------------------------------------
    @property
    def session(self) -> aiohttp.ClientSession:
        """The pooled session, created on first use (it must be made inside a loop)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                connector=aiohttp.TCPConnector(limit=20, ttl_dns_cache=300),
                raise_for_status=False,
            )
        return self._session

    async def start(self) -> None:
        _ = self.session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> TradierClient:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- REST -----------------------------------------------------------------------
    async def get(self, path: str, params: Params | None = None, *, retry: bool = True) -> Any:
        return await self.request("GET", path, params=params, retry=retry)

    async def post(self, path: str, data: Params | None = None, *, idempotent: bool = False) -> Any:
        """POST a form. Not retried past a 429 unless the caller says it is idempotent
        (an order POST that timed out may have been placed)."""
        return await self.request("POST", path, data=data, idempotent=idempotent)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        data: Params | None = None,
        idempotent: bool | None = None,
        retry: bool = True,
    ) -> Any:
        """Decoded JSON of a successful answer, else ``TradierError``."""
        if idempotent is None:
            idempotent = method in ("GET", "HEAD", "DELETE")
        policy = self.retry if retry else replace(self.retry, attempts=1)
        tried = 0
        try:
            async for attempt in policy.retrying(partial(_should_retry, idempotent)):
                with attempt:
                    tried = attempt.num
                    return await self._once(method, path, _clean(params), _clean(data))
        except TradierRetryableError as exc:
            if tried <= 1:
                raise
            raise TradierError(f"{exc}; gave up after {tried} attempts", status=exc.status) from exc
        raise AssertionError("unreachable: stamina either returns or raises")

    async def _once(
        self, method: str, path: str, params: dict[str, str] | None, data: dict[str, str] | None
    ) -> Any:
        bucket = quota_bucket(method, path)
        await self._respect_quota(bucket)
        url = f"{self.base_url}{path}"
        try:
            async with self.session.request(
                method,
                url,
                params=params,
                data=data,
                headers=self._headers(),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            ) as resp:
                self._record_quota(bucket, resp.headers)
                text = await resp.text()
                status, ctype = resp.status, resp.content_type
                retry_after = _retry_after(resp.headers)
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as exc:
            kind = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
            raise TradierRetryableError(f"cannot reach Tradier at {url}: {kind}") from exc
        return _decode(method, path, status, ctype, text, retry_after)

    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self._token.get_secret_value()}",
            "Accept": "application/json",
        }

    # -- rate limits ----------------------------------------------------------------
    def _record_quota(self, bucket: str, headers: Mapping[str, str]) -> None:
        available = _int_header(headers, "X-Ratelimit-Available")
        if available is None:
            return
        expiry_ms = _int_header(headers, "X-Ratelimit-Expiry")
        limit = RateLimit(
            allowed=_int_header(headers, "X-Ratelimit-Allowed"),
            used=_int_header(headers, "X-Ratelimit-Used"),
            available=available,
            expiry=expiry_ms / 1000.0 if expiry_ms else None,
        )
        self.limits[bucket] = limit
        if available <= 0 and limit.expiry is not None:
            self._blocked_until[bucket] = limit.expiry
        else:
            self._blocked_until.pop(bucket, None)

    async def _respect_quota(self, bucket: str) -> None:
        """Sleep (capped) until the quota window resets when the last answer said 0 left."""
        until = self._blocked_until.get(bucket)
        if until is None:
            return
        delay = min(until - self._clock() + QUOTA_MARGIN, self.retry.retry_after_max)
        if delay > 0:
            log.warning("Tradier %s quota used up; waiting %.2fs for it to reset", bucket, delay)
            await asyncio.sleep(delay)
        self._blocked_until.pop(bucket, None)

    # -- streaming ------------------------------------------------------------------
    async def ws_connect(
        self, url: str, *, heartbeat: float = 30.0
    ) -> aiohttp.ClientWebSocketResponse[bool]:
        """A WebSocket on the pooled session; no token is sent (the session id authenticates)."""
        try:
            async with asyncio.timeout(self.timeout):
                return await self.session.ws_connect(url, heartbeat=heartbeat)
        except (aiohttp.ClientError, TimeoutError) as exc:
            kind = "timed out" if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__
            raise TradierRetryableError(f"cannot open the Tradier stream at {url}: {kind}") from exc


def _should_retry(idempotent: bool, exc: Exception) -> bool | float:
    """Transient failures are retried, after ``Retry-After`` when Tradier sends one (the
    policy caps it); a non-idempotent call only past a 429, which placed nothing."""
    if not isinstance(exc, TradierRetryableError):
        return False
    if not idempotent and exc.status != 429:
        return False
    return exc.retry_after if exc.retry_after is not None else True


def _clean(params: Params | None) -> dict[str, str] | None:
    """Drop unset parameters; stringify the rest (aiohttp refuses bools and None)."""
    if params is None:
        return None
    return {k: str(v) for k, v in params.items() if v is not None}


def _retry_after(headers: Mapping[str, str]) -> float | None:
    try:
        return float(headers["Retry-After"])
    except (KeyError, ValueError):
        return None


def _decode(
    method: str, path: str, status: int, ctype: str, text: str, retry_after: float | None
) -> Any:
    if status == 401:
        raise TradierAuthError("Tradier rejected the token (401)", status=status)
    if status == 403:
        raise TradierAuthError(
            f"Tradier refused {method} {path} (403): {error_message(text)}", status=status
        )
    if status == 429:
        raise TradierRetryableError(
            "Tradier rate limit exceeded (429)", status=status, retry_after=retry_after
        )
    if status >= 500:
        raise TradierRetryableError(
            f"Tradier server error ({status}) on {method} {path}: {error_message(text)}",
            status=status,
        )
    if status >= 400:
        raise TradierError(
            f"Tradier rejected {method} {path} ({status}): {error_message(text)}", status=status
        )
    if ctype != "application/json":
        raise TradierError(
            f"Tradier answered {ctype or 'no content type'} instead of JSON for {method} {path}",
            status=status,
        )
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise TradierError(f"Tradier sent malformed JSON for {method} {path}") from exc
