"""TradeNote over Parse REST (``{url}/parse``, application id + master key).

Errors are classified so the worker knows what to do with them:
``TradeNoteUnavailable`` (network, timeout, 5xx, 429) and ``TradeNoteAuthError`` /
``TradeNoteUserNotFound`` / ``TradeNoteBadResponse`` are about TradeNote as a whole:
the fills wait and are retried. ``TradeNoteRejected`` is about one request's content.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

log = logging.getLogger("app.journal")

BATCH_LIMIT = 50  # Parse Server's default maximum of requests per /batch
BATCH_BYTES = 4_000_000  # keep each /batch body well under Parse's 20 MB maxUploadSize


class TradeNoteError(Exception):
    """A TradeNote call failed; ``reason`` is the metric label."""

    reason = "error"


class TradeNoteUnavailable(TradeNoteError):
    reason = "unavailable"


class TradeNoteAuthError(TradeNoteError):
    reason = "auth"


class TradeNoteUserNotFound(TradeNoteError):
    reason = "unknown_user"


class TradeNoteBadResponse(TradeNoteError):
    reason = "bad_response"


class TradeNoteRejected(TradeNoteError):
    """Parse refused one request (4xx with a Parse error code)."""

    reason = "rejected"

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class TradeNoteUser:
    object_id: str
    username: str
    accounts: list[dict[str, Any]] = field(default_factory=list)
    time_zone: str | None = None

    @property
    def pointer(self) -> dict[str, str]:
        return {"__type": "Pointer", "className": "_User", "objectId": self.object_id}

    @property
    def acl(self) -> dict[str, dict[str, bool]]:
        return {self.object_id: {"read": True, "write": True}}


@dataclass
class BatchResult:
    success: dict[str, Any] | None = None
    error: TradeNoteRejected | None = None


class TradeNoteClient:
    """A small async Parse REST client for TradeNote's classes (one aiohttp session)."""

    def __init__(
        self,
        url: str,
        app_id: str,
        master_key: str,
        *,
        timeout: float = 10.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        base = url.rstrip("/")
        self.parse_url = base if urlsplit(base).path.endswith("/parse") else f"{base}/parse"
        self._headers = {
            "X-Parse-Application-Id": app_id,
            "X-Parse-Master-Key": master_key,
            "Content-Type": "application/json",
        }
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=min(timeout, 5.0))
        self._session = session
        self._own_session = session is None
        self._batch_path = urlsplit(self.parse_url).path  # "/parse"

    async def __aenter__(self) -> TradeNoteClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None and self._own_session:
            await self._session.close()
        self._session = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                json_serialize=lambda o: orjson.dumps(o).decode(),
                connector=aiohttp.TCPConnector(limit=16),
            )
            self._own_session = True
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        """One Parse REST call; returns the decoded JSON body or raises a TradeNoteError."""
        url = f"{self.parse_url}/{path.lstrip('/')}"
        data = orjson.dumps(body) if body is not None else None
        try:
            async with self._get_session().request(
                method, url, data=data, params=params, headers=self._headers
            ) as resp:
                raw = await resp.read()
                status = resp.status
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise TradeNoteUnavailable(
                f"TradeNote unreachable at {self.parse_url}: {type(exc).__name__}: {exc}"
            ) from None
        try:
            decoded: Any = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            decoded = None
        if status >= 500 or status == 429:
            raise TradeNoteUnavailable(f"TradeNote answered HTTP {status} to {method} /{path}")
        if decoded is None or not isinstance(decoded, dict | list):
            raise TradeNoteBadResponse(
                f"TradeNote answered HTTP {status} with a non-JSON body to {method} /{path}: "
                f"{raw[:120]!r}"
            )
        if status in (401, 403):
            raise TradeNoteAuthError(
                f"TradeNote refused the credentials (HTTP {status}): check "
                "TRADEROPS_TRADENOTE_APP_ID and TRADEROPS_TRADENOTE_MASTER_KEY"
            )
        if status >= 400:
            code = decoded.get("code") if isinstance(decoded, dict) else None
            message = decoded.get("error") if isinstance(decoded, dict) else None
            raise TradeNoteRejected(
                f"TradeNote rejected {method} /{path}: HTTP {status} code {code}: {message}",
                code if isinstance(code, int) else None,
            )
        return decoded

    # -- users -----------------------------------------------------------------------
    async def find_user(self, username: str) -> TradeNoteUser:
        body = await self.request(
            "GET",
            "users",
            params={"where": orjson.dumps({"username": username}).decode(), "limit": "1"},
        )
        results = _results(body)
        if not results:
            # A wrong master key is not an error to Parse: the query just runs without
            # privileges and finds nobody. Tell the two apart with a master-only call.
            await self.request("GET", "schemas/_User")
            raise TradeNoteUserNotFound(
                f"TradeNote has no user {username!r}: create it in TradeNote (or set "
                "TRADEROPS_TRADENOTE_USERNAME)"
            )
        user = results[0]
        try:
            return TradeNoteUser(
                object_id=str(user["objectId"]),
                username=str(user.get("username", username)),
                accounts=list(user.get("accounts") or []),
                time_zone=user.get("timeZone"),
            )
        except (KeyError, TypeError):
            raise TradeNoteBadResponse("TradeNote returned a user without objectId") from None

    async def ensure_accounts(self, user: TradeNoteUser, names: Iterable[str]) -> bool:
        """Add the missing accounts to ``_User.accounts`` as ``{value, label}``."""
        have = {str(a.get("value")) for a in user.accounts if isinstance(a, dict)}
        missing = [n for n in dict.fromkeys(names) if n not in have]
        if not missing:
            return False
        accounts = [*user.accounts, *({"value": n, "label": n} for n in missing)]
        await self.request("PUT", f"users/{user.object_id}", body={"accounts": accounts})
        user.accounts = accounts
        log.info("added account(s) %s to TradeNote user %s", ", ".join(missing), user.username)
        return True

    # -- trades (day documents) ---------------------------------------------------------
    async def find_days(
        self, user: TradeNoteUser, date_unix: Sequence[int]
    ) -> dict[int, dict[str, Any]]:
        """The user's ``trades`` documents for these days, by ``dateUnix``: the oldest one,
        with any later documents for the same day under ``_duplicates`` (a write from a
        killed worker can land after its successor created the day again)."""
        found: dict[int, dict[str, Any]] = {}
        if not date_unix:
            return found
        where = {"user": user.pointer, "dateUnix": {"$in": sorted(set(date_unix))}}
        body = await self.request(
            "GET",
            "classes/trades",
            params={
                "where": orjson.dumps(where).decode(),
                "limit": str(max(100, 2 * len(date_unix))),
                "order": "createdAt",
            },
        )
        for doc in _results(body):
            key = doc.get("dateUnix")
            if not isinstance(key, int | float):
                continue
            if int(key) not in found:
                found[int(key)] = doc
            else:
                found[int(key)].setdefault("_duplicates", []).append(doc)
        return found

    async def batch(self, requests: Sequence[Mapping[str, Any]]) -> list[BatchResult]:
        """Parse ``/batch`` in chunks; one result per request, in order."""
        results: list[BatchResult] = []
        for chunk in self._chunks(requests):
            body = await self.request("POST", "batch", body={"requests": chunk})
            if not isinstance(body, list) or len(body) != len(chunk):
                raise TradeNoteBadResponse("TradeNote answered /batch with an unexpected shape")
            for item in body:
                if isinstance(item, dict) and isinstance(item.get("success"), dict):
                    results.append(BatchResult(success=item["success"]))
                elif isinstance(item, dict) and isinstance(item.get("error"), dict):
                    err = item["error"]
                    results.append(
                        BatchResult(
                            error=TradeNoteRejected(
                                f"TradeNote rejected a batched write: code {err.get('code')}: "
                                f"{err.get('error')}",
                                err.get("code") if isinstance(err.get("code"), int) else None,
                            )
                        )
                    )
                else:
                    raise TradeNoteBadResponse("TradeNote answered /batch with an unknown item")
        return results

    def _chunks(self, requests: Sequence[Mapping[str, Any]]) -> list[list[dict[str, Any]]]:
        """At most BATCH_LIMIT requests and about BATCH_BYTES per /batch call (Parse
        refuses bodies over its maxUploadSize, 20 MB by default)."""
        chunks: list[list[dict[str, Any]]] = []
        current: list[dict[str, Any]] = []
        size = 0
        for r in requests:
            item = {**r, "path": f"{self._batch_path}/{str(r['path']).lstrip('/')}"}
            item_size = len(orjson.dumps(item))
            if current and (len(current) >= BATCH_LIMIT or size + item_size > BATCH_BYTES):
                chunks.append(current)
                current, size = [], 0
            current.append(item)
            size += item_size
        if current:
            chunks.append(current)
        return chunks

    async def health(self) -> bool:
        try:
            body = await self.request("GET", "health")
        except TradeNoteError:
            return False
        return isinstance(body, dict) and body.get("status") == "ok"


def _results(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, dict) or not isinstance(body.get("results"), list):
        raise TradeNoteBadResponse("TradeNote answered a query without a results list")
    return [r for r in body["results"] if isinstance(r, dict)]
