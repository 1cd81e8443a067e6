"""One line, not a traceback, when a command cannot reach what it talks to.

``trader-ops journal export`` with Redis down printed 237 lines. Every command runs
inside :func:`one_line_errors`: a connection failure to Redis, TradeNote, the datahub
or Tradier becomes ``trader-ops: cannot reach <what> at <where> (<setting>): <why>``
on stderr and exit status 1. Anything else still raises (a bug deserves its traceback).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from app.cli_support import redis_target
from app.config import ConfigError, load_settings, redact_url

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


def _settings_value(name: str) -> str | None:
    try:
        value = getattr(load_settings(), name, None)
    except ConfigError:
        return None
    return None if value is None else redact_url(str(value))


def describe_failure(exc: BaseException) -> str | None:
    """The one line for a connection failure anywhere in ``exc``'s chain, else ``None``."""
    import aiohttp  # here, not at the top: main() imports this module only on a failure
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    for e in _chain(exc):
        why = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        if isinstance(e, RedisConnectionError | RedisTimeoutError):
            return _redis_line(why)
        if isinstance(e, aiohttp.ClientConnectionError | TimeoutError | ConnectionError):
            where, setting = _which_peer(why)
            return f"cannot reach {where} ({setting}): {why}"
        if type(e).__name__ == "TradeNoteUnavailable":
            url = _settings_value("tradenote_url")
            return f"cannot reach TradeNote at {url} (TRADEROPS_TRADENOTE_URL): {why}"
    return None


def _redis_line(why: str) -> str:
    """Name what the user can act on: the variable they set, the running stack the URL
    came from, or (neither) that no stack runs on the data directory."""
    target = redis_target()
    if target is None or target.explicit:
        url = redact_url(target.url) if target else "?"
        return f"cannot reach Redis at {url} (TRADEROPS_REDIS_URL): {why}"
    if target.recorded_in is not None:
        return (
            f"cannot reach the Redis of the trader-ops run on {target.data_dir} at "
            f"{redact_url(target.url)} (recorded in {target.recorded_in}): {why}"
        )
    return (
        f"no trader-ops run is running on {target.data_dir}: start one with "
        "`trader-ops run` (same TRADEROPS_DATA_DIR), or set TRADEROPS_REDIS_URL to your "
        f"Redis (the default {redact_url(target.url)} did not answer: {why})"
    )


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
