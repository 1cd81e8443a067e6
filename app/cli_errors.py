"""One line, not a traceback, when a command cannot reach what it talks to.

``trader-ops journal export`` with Redis down printed 237 lines. Every command runs
inside :func:`one_line_errors`: a connection failure to Redis, TradeNote, the datahub
or Tradier becomes ``trader-ops: cannot reach <what> at <where> (<setting>): <why>``
on stderr and exit status 1. Anything else still raises (a bug deserves its traceback).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import aiohttp
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.config import ConfigError, load_settings

_ADDRESS = re.compile(
    r"(?:connecting to |to host |Cannot connect to host )\[?([\w.\-:]+?)\]?(?:[. ]|$)"
)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        if isinstance(e, BaseExceptionGroup):
            todo.extend(e.exceptions)
        for nxt in (e.__cause__, e.__context__):
            if nxt is not None:
                todo.append(nxt)


def _redacted(url: str | None) -> str:
    if not url:
        return "?"
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.split('@', 1)[1]}" if "@" in rest else url


def _settings_value(name: str) -> str | None:
    try:
        value = getattr(load_settings(), name, None)
    except ConfigError:
        return None
    return None if value is None else str(value)


def describe_failure(exc: BaseException) -> str | None:
    """The one line for a connection failure anywhere in ``exc``'s chain, else ``None``."""
    for e in _chain(exc):
        why = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        if isinstance(e, RedisConnectionError | RedisTimeoutError):
            from app.cli_support import current_redis_url

            return (
                f"cannot reach Redis at {_redacted(current_redis_url())} "
                f"(TRADEROPS_REDIS_URL): {why}"
            )
        if isinstance(e, aiohttp.ClientConnectionError | TimeoutError | ConnectionError):
            where, setting = _which_peer(why)
            return f"cannot reach {where} ({setting}): {why}"
        if type(e).__name__ == "TradeNoteUnavailable":
            url = _settings_value("tradenote_url")
            return f"cannot reach TradeNote at {url} (TRADEROPS_TRADENOTE_URL): {why}"
    return None


def _which_peer(why: str) -> tuple[str, str]:
    """Best guess of the peer from the error text and the configured URLs."""
    found = _ADDRESS.search(why)
    hostport = found.group(1) if found else ""
    for name, label, setting in (
        ("tradenote_url", "TradeNote", "TRADEROPS_TRADENOTE_URL"),
        ("datahub_url", "the datahub", "TRADEROPS_DATAHUB_URL"),
        ("tradier_base_url", "Tradier", "TRADEROPS_TRADIER_BASE_URL"),
    ):
        url = _settings_value(name)
        if url and hostport and hostport.split(":")[0] in url:
            return f"{label} at {url}", setting
    return (f"{hostport or 'a service'}", "check the TRADEROPS_*_URL settings")
