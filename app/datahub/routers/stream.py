"""WebSocket ``/stream``: subscribe to symbols, receive conflated quote batches.

Client -> server: ``{"op": "subscribe"|"unsubscribe", "symbols": [...]}``, ``{"op": "ping"}``,
``{"op": "auth", "key": "<admin key>"}`` or ``{"op": "auth", "token": ...}`` (a 60 s token
from ``POST /api/v1/stream-token`` with ``X-API-Key``).
Server -> client: ``{"type": "quotes", "data": [quote, ...]}``, ``subscribed``,
``unsubscribed``, ``heartbeat``, ``pong``, ``authenticated``, ``order`` and ``fill`` (only
after ``auth``) and ``error`` (the connection stays open, except after a wrong key or a
binary frame: then the server closes with 1008 / 1003).

Quotes are public; order and fill events are private to clients that sent the admin key
in a message (never in the URL, where access logs would keep it). A handshake whose
``Origin`` is neither the datahub's own nor in ``TRADEROPS_ALLOWED_ORIGINS`` is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import time
from typing import Any

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import BaseModel

from app.datahub.deps import ServicesDep
from app.datahub.errors import Problem, responses
from app.datahub.guards import origin_allowed
from app.datahub.security import AdminDep, constant_time_equals
from app.datahub.services import Services
from app.datahub.stream import StreamClient
from app.feeds.base import FeedError
from app.models.market import is_valid_symbol, normalize_symbol

router = APIRouter(tags=["stream"])
log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 64 * 1024
MAX_LOOKUPS_PER_CONNECTION = 500  # symbols the feed is asked about (not cached) per client


async def _handle(client: StreamClient, services: Services, raw: str) -> None:
    if len(raw) > MAX_MESSAGE_BYTES:
        client.send_control({"type": "error", "error": "message too large (max 64 KiB)"})
        return
    try:
        message: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        client.send_control({"type": "error", "error": "malformed JSON"})
        return
    if not isinstance(message, dict) or "op" not in message:
        client.send_control({"type": "error", "error": 'expected an object with "op"'})
        return
    op = message["op"]
    if op == "ping":
        client.send_control({"type": "pong"})
        return
    if op == "auth":
        await _authenticate(client, services, message.get("key"), message.get("token"))
        return
    if op not in ("subscribe", "unsubscribe"):
        client.send_control({"type": "error", "error": f"unknown op {str(op)[:40]!r}"})
        return
    symbols = message.get("symbols")
    if not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols):
        client.send_control({"type": "error", "error": '"symbols" must be a list of strings'})
        return
    cap = services.settings.ws_max_symbols
    if len(symbols) > cap:  # refused before any lookup: one message cannot fan out to the feed
        client.send_control({"type": "error", "error": f"at most {cap} symbols per message"})
        return
    wanted = list(dict.fromkeys(normalize_symbol(s) for s in symbols if s.strip()))
    if op == "unsubscribe":
        services.hub.unsubscribe(client, wanted)
        client.send_control({"type": "unsubscribed", "symbols": sorted(client.symbols)})
        return
    known: list[str] = []
    unknown: list[str] = []
    lookups = services.market.symbols
    for symbol in wanted:
        if not is_valid_symbol(symbol):
            unknown.append(symbol)
            continue
        if not lookups.cached(symbol):  # a feed call: each connection has a budget of them
            if client.lookups >= MAX_LOOKUPS_PER_CONNECTION:
                client.send_control(
                    {"type": "error", "error": "too many symbol lookups on this connection"}
                )
                return
            client.lookups += 1
        (known if await lookups.resolve(symbol) is not None else unknown).append(symbol)
    limit = services.settings.ws_max_symbols
    if len(client.symbols | set(known)) > limit:
        client.send_control({"type": "error", "error": f"at most {limit} symbols per connection"})
        return
    if unknown:
        client.send_control({"type": "error", "error": "unknown symbols", "symbols": unknown})
    services.hub.subscribe(client, known)
    client.send_control({"type": "subscribed", "symbols": sorted(client.symbols)})
    if known:  # a snapshot, so a new subscriber does not wait for the next tick
        try:
            for symbol, quote in (await services.market.quotes(known)).items():
                if symbol in client.symbols and symbol not in client.pending:
                    client.push_quote(symbol, quote.model_dump())
        except FeedError as exc:
            log.warning("no snapshot for new subscriber: %s", exc)


TOKEN_SECONDS = 60


def stream_token(admin_key: str, expires: int) -> str:
    """A short-lived stream credential: its expiry and an HMAC of it under the admin key
    (stateless, so any datahub process accepts it; never the key itself)."""
    mac = hmac.new(admin_key.encode(), f"stream:{expires}".encode(), hashlib.sha256)
    return f"{expires}.{mac.hexdigest()}"


def _token_ok(admin_key: str, token: str) -> bool:
    expires, _, _ = token.partition(".")
    if not expires.isdigit() or int(expires) < time.time():
        return False
    return constant_time_equals(token, stream_token(admin_key, int(expires)))


class StreamToken(BaseModel):
    token: str
    expires_in: int


@router.post(
    "/api/v1/stream-token",
    response_model=StreamToken,
    dependencies=[AdminDep],
    responses=responses(Problem, 401, 503),
)
async def new_stream_token(services: ServicesDep) -> StreamToken:
    """A token for ``{"op": "auth", "token": ...}`` on /stream, valid for 60 s."""
    key = services.settings.admin_api_key
    assert key is not None  # AdminDep answered 503 otherwise
    expires = int(time.time()) + TOKEN_SECONDS
    return StreamToken(
        token=stream_token(key.get_secret_value(), expires), expires_in=TOKEN_SECONDS
    )


async def _authenticate(
    client: StreamClient, services: Services, key: object, token: object = None
) -> None:
    configured = services.settings.admin_api_key
    if configured is None:
        client.send_control({"type": "error", "error": "private events disabled: no admin key"})
        return
    secret = configured.get_secret_value()
    if (isinstance(key, str) and constant_time_equals(key, secret)) or (
        isinstance(token, str) and _token_ok(secret, token)
    ):
        client.private = True
        client.send_control({"type": "authenticated"})
        return
    client.send_control({"type": "error", "error": "wrong admin key or token"})
    client.close_after_control(1008, "wrong admin key or token")


async def _receive_text(ws: WebSocket) -> str | None:
    """The next text frame; ``None`` after a binary frame (answered with an error)."""
    message = await ws.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    text = message.get("text")
    if text is None:
        return None
    return str(text)


@router.websocket("/stream")
async def stream(ws: WebSocket) -> None:
    services: Services = ws.app.state.services
    settings = services.settings
    if not origin_allowed(ws.headers, settings.allowed_origins):
        log.info("refused a stream handshake from origin %.80s", ws.headers.get("origin"))
        await ws.close(code=1008)  # before accept: the handshake is answered 403
        return
    await ws.accept()
    client = StreamClient(ws, services.hub)
    services.hub.add(client)
    client.send_control({"type": "welcome", "heartbeat": settings.ws_heartbeat_seconds})
    sender = asyncio.create_task(
        client.sender(settings.ws_heartbeat_seconds, settings.ws_send_timeout_seconds)
    )
    try:
        while not client.closed:
            receive = asyncio.ensure_future(_receive_text(ws))
            done, _ = await asyncio.wait({receive, sender}, return_when=asyncio.FIRST_COMPLETED)
            if receive not in done:  # sender finished: dropped as too slow, or closed by us
                receive.cancel()
                break
            text = receive.result()
            if text is None:
                client.send_control({"type": "error", "error": "binary frames are not supported"})
                client.close_after_control(1003, "binary frames are not supported")
                continue
            await _handle(client, services, text)
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        services.hub.remove(client)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sender
