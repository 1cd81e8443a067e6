"""WebSocket ``/stream``: subscribe to symbols, receive conflated quote batches.

Client -> server: ``{"op": "subscribe"|"unsubscribe", "symbols": [...]}``, ``{"op": "ping"}``.
Server -> client: ``{"type": "quotes", "data": [quote, ...]}``, ``subscribed``,
``unsubscribed``, ``heartbeat``, ``pong`` and ``error`` (the connection stays open).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from app.datahub.services import Services
from app.datahub.stream import StreamClient
from app.feeds.base import FeedError
from app.models.market import is_valid_symbol, normalize_symbol

router = APIRouter(tags=["stream"])
log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 64 * 1024


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
    if op not in ("subscribe", "unsubscribe"):
        client.send_control({"type": "error", "error": f"unknown op {str(op)[:40]!r}"})
        return
    symbols = message.get("symbols")
    if not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols):
        client.send_control({"type": "error", "error": '"symbols" must be a list of strings'})
        return
    wanted = list(dict.fromkeys(normalize_symbol(s) for s in symbols if s.strip()))
    if op == "unsubscribe":
        services.hub.unsubscribe(client, wanted)
        client.send_control({"type": "unsubscribed", "symbols": sorted(client.symbols)})
        return
    known: list[str] = []
    unknown: list[str] = []
    for symbol in wanted:
        ok = is_valid_symbol(symbol) and await services.feed.resolve(symbol) is not None
        (known if ok else unknown).append(symbol)
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


@router.websocket("/stream")
async def stream(ws: WebSocket) -> None:
    services: Services = ws.app.state.services
    settings = services.settings
    await ws.accept()
    client = StreamClient(ws, services.hub)
    services.hub.add(client)
    client.send_control({"type": "welcome", "heartbeat": settings.ws_heartbeat_seconds})
    sender = asyncio.create_task(
        client.sender(settings.ws_heartbeat_seconds, settings.ws_send_timeout_seconds)
    )
    try:
        while not client.closed:
            receive = asyncio.ensure_future(ws.receive_text())
            done, _ = await asyncio.wait({receive, sender}, return_when=asyncio.FIRST_COMPLETED)
            if receive not in done:  # sender finished: client dropped as too slow
                receive.cancel()
                break
            await _handle(client, services, receive.result())
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        services.hub.remove(client)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sender
