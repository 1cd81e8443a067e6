"""Everything kairos asks of the datahub: bars (UDF history), quotes, the book (admin API),
and signed alert posts.

Connection errors and 5xx are retried with capped, jittered exponential backoff (``app.retry``);
that is safe for alerts too because their ids make them idempotent. A 4xx is the datahub's
final word (bad request, auth, risk denial): never retried, returned and logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import aiohttp
import orjson

from app.kairos.alerts import sign
from app.kairos.models import Account, Position, QuoteSnapshot
from app.models.market import Bar, Resolution
from app.retry import RetryPolicy

log = logging.getLogger("app.kairos.datahub")

WEBHOOK_PATH = "/webhook/tradingview"


class DatahubError(Exception):
    """The datahub could not answer usefully (after retries, or with a 4xx)."""


class TransientHTTPError(DatahubError):
    """A 5xx: worth another attempt."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status


DATAHUB_RETRY = RetryPolicy(
    attempts=5, total_timeout=30.0, wait_initial=0.2, wait_max=5.0, wait_jitter=0.5
)


@dataclass(frozen=True, slots=True)
class AlertResult:
    """The datahub's answer to one alert: ``accepted`` is any 2xx (its body holds the
    decision, e.g. a risk denial); a 4xx is final and ``accepted`` is False."""

    alert_id: str
    status: int
    accepted: bool
    body: Any


def _retryable(exc: Exception) -> bool:
    return isinstance(exc, aiohttp.ClientConnectionError | TimeoutError | TransientHTTPError)


def _decode(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode("utf-8", "replace")


class DatahubClient:
    """One HTTP session to the datahub; an async context manager."""

    def __init__(
        self,
        base_url: str,
        *,
        hmac_key: bytes | None = None,
        admin_key: str | None = None,
        retry: RetryPolicy | None = None,
        request_timeout: float = 10.0,
        max_concurrency: int = 16,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.hmac_key = hmac_key
        self.admin_key = admin_key
        self.retry = retry or DATAHUB_RETRY
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._session = session
        self._own_session = session is None
        self._limit = asyncio.Semaphore(max_concurrency)

    async def __aenter__(self) -> DatahubClient:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, connector=aiohttp.TCPConnector(limit=64)
            )
            self._own_session = True
        return self._session

    async def close(self) -> None:
        if self._session is not None and self._own_session and not self._session.closed:
            await self._session.close()

    def _api_headers(self) -> dict[str, str]:
        return {"X-API-Key": self.admin_key} if self.admin_key else {}

    async def _request(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, str] | None = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        """(status, body) of the first non-5xx answer; raises after the retries run out."""
        async with self._limit:
            async for attempt in self.retry.retrying(_retryable):
                with attempt:
                    async with self.session.request(
                        method, url, params=params, data=data, headers=headers
                    ) as resp:
                        body = await resp.read()
                        if resp.status >= 500:
                            raise TransientHTTPError(
                                resp.status, body[:200].decode("utf-8", "replace")
                            )
                        return resp.status, body
        raise AssertionError("unreachable: stamina re-raises the last error")

    async def _get_json(self, path: str, params: dict[str, str] | None = None) -> Any:
        headers = self._api_headers() if path.startswith("/api/") else None
        try:
            status, body = await self._request(
                "GET", self.base_url + path, params=params, headers=headers
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DatahubError(f"GET {path}: {exc.__class__.__name__}: {exc}") from exc
        if status >= 400:
            raise DatahubError(
                f"GET {path}: HTTP {status}: {body[:200].decode('utf-8', 'replace')}"
            )
        return _decode(body)

    # -- market data --------------------------------------------------------------
    async def history(
        self, symbol: str, resolution: Resolution, *, end: int, countback: int
    ) -> list[Bar]:
        """The last ``countback`` bars that *start* before ``end`` (UDF ``to`` is exclusive)."""
        span = max(countback * resolution.seconds * 6, 10 * 86_400)  # room for nights/weekends
        params = {
            "symbol": symbol,
            "resolution": resolution.value,
            "from": str(end - span),
            "to": str(end),
            "countback": str(countback),
        }
        data = await self._get_json("/udf/history", params)
        if not isinstance(data, dict):
            raise DatahubError(f"history {symbol}: unexpected answer {data!r:.200}")
        status = data.get("s")
        if status == "no_data":
            return []
        if status != "ok":
            raise DatahubError(f"history {symbol}: {data.get('errmsg') or status!r}")
        cols = [data.get(k) or [] for k in ("t", "o", "h", "l", "c", "v")]
        n = len(cols[0])
        if any(len(c) != n for c in cols[1:4]):
            raise DatahubError(f"history {symbol}: columns of different lengths")
        volumes = cols[5] if len(cols[5]) == n else [0.0] * n
        return [
            Bar.model_construct(
                time=int(cols[0][i]),
                open=float(cols[1][i]),
                high=float(cols[2][i]),
                low=float(cols[3][i]),
                close=float(cols[4][i]),
                volume=float(volumes[i]),
            )
            for i in range(n)
        ]

    async def quotes(self, symbols: Sequence[str]) -> dict[str, QuoteSnapshot]:
        if not symbols:
            return {}
        data = await self._get_json("/api/v1/quotes", {"symbols": ",".join(symbols)})
        quotes = data.get("quotes", {}) if isinstance(data, dict) else {}
        unknown = data.get("unknown") if isinstance(data, dict) else None
        if unknown:
            log.warning("datahub does not know %s", ", ".join(map(str, unknown)))
        return {str(k): QuoteSnapshot.model_validate(v) for k, v in quotes.items()}

    # -- the book (admin API) -------------------------------------------------------
    async def positions(self) -> dict[str, Position]:
        data = await self._get_json("/api/v1/positions")
        rows = data.get("positions", []) if isinstance(data, dict) else data
        return {p.symbol: p for p in (Position.model_validate(r) for r in rows)}

    async def account(self) -> Account:
        return Account.model_validate(await self._get_json("/api/v1/account"))

    # -- alerts -------------------------------------------------------------------
    async def post_alert(
        self, raw: bytes, alert_id: str, *, webhook: str | None = None
    ) -> AlertResult:
        """POST a signed alert body; retried on connection errors and 5xx only."""
        if self.hmac_key is None:
            raise DatahubError("no webhook HMAC key configured (TRADEROPS_WEBHOOK_HMAC_KEY)")
        url = (webhook or self.base_url).rstrip("/") + WEBHOOK_PATH
        headers = {"Content-Type": "application/json", "X-Signature": sign(self.hmac_key, raw)}
        try:
            status, body = await self._request("POST", url, data=raw, headers=headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DatahubError(f"alert {alert_id}: {exc.__class__.__name__}: {exc}") from exc
        result = AlertResult(alert_id, status, 200 <= status < 300, _decode(body))
        if not result.accepted:
            log.warning("alert %s refused: HTTP %s %s", alert_id, status, str(result.body)[:300])
        return result
