"""The fan-out hub: a slow client is conflated, then dropped, and never delays the others."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import orjson

from app.datahub.stream import QuoteHub, StreamClient


class FakeSocket:
    """Stands in for Starlette's WebSocket: records frames, optionally never completes a send."""

    def __init__(self, *, stuck: bool = False) -> None:
        self.stuck = stuck
        self.frames: list[dict[str, Any]] = []
        self.closed_with: int | None = None

    async def send_text(self, text: str) -> None:
        if self.stuck:
            await asyncio.Event().wait()
        self.frames.append(json.loads(text))

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed_with = code


def quote(symbol: str, n: int) -> bytes:
    return orjson.dumps({"symbol": symbol, "time": n, "last": 100 + n, "bid": 99, "ask": 101})


async def test_slow_client_is_dropped_and_fast_client_gets_everything() -> None:
    hub = QuoteHub(redis=None)  # type: ignore[arg-type]
    fast_ws, slow_ws = FakeSocket(), FakeSocket(stuck=True)
    fast, slow = StreamClient(fast_ws, hub), StreamClient(slow_ws, hub)  # type: ignore[arg-type]
    for c in (fast, slow):
        hub.add(c)
        hub.subscribe(c, ["AAPL"])
    tasks = [asyncio.create_task(c.sender(heartbeat=60, send_timeout=0.2)) for c in (fast, slow)]
    for n in range(50):
        hub.dispatch(quote("AAPL", n))
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.3)
    received = [q["time"] for f in fast_ws.frames for q in f["data"]]
    assert received[-1] == 49 and received == sorted(received)
    assert slow.closed and slow_ws.closed_with == 1013
    hub.remove(slow)
    assert slow not in hub.subscribers["AAPL"]
    for t in tasks:
        t.cancel()


async def test_a_backlog_is_conflated_to_the_latest_quote_per_symbol() -> None:
    hub = QuoteHub(redis=None)  # type: ignore[arg-type]
    ws = FakeSocket()
    client = StreamClient(ws, hub)  # type: ignore[arg-type]
    hub.subscribe(client, ["AAPL", "MSFT"])
    for n in range(100):  # arrives while the sender is not running
        hub.dispatch(quote("AAPL", n))
        hub.dispatch(quote("MSFT", n))
    hub.dispatch(quote("TSLA", 1))  # not subscribed
    task = asyncio.create_task(client.sender(heartbeat=60, send_timeout=1))
    await asyncio.sleep(0.05)
    assert len(ws.frames) == 1
    assert sorted((q["symbol"], q["time"]) for q in ws.frames[0]["data"]) == [
        ("AAPL", 99),
        ("MSFT", 99),
    ]
    task.cancel()


async def test_idle_clients_get_heartbeats() -> None:
    hub = QuoteHub(redis=None)  # type: ignore[arg-type]
    ws = FakeSocket()
    client = StreamClient(ws, hub)  # type: ignore[arg-type]
    task = asyncio.create_task(client.sender(heartbeat=0.05, send_timeout=1))
    await asyncio.sleep(0.18)
    task.cancel()
    assert [f["type"] for f in ws.frames][:2] == ["heartbeat", "heartbeat"]


async def test_clients_get_only_their_symbols_and_each_tick_its_own_prices() -> None:
    """Frames are encoded once per tick and shared between clients with the same symbols:
    a client must still get exactly its symbols, and the next tick's prices, not a reused frame."""
    hub = QuoteHub(redis=None)  # type: ignore[arg-type]
    sockets = {name: FakeSocket() for name in ("a", "b", "c")}
    clients = {name: StreamClient(ws, hub) for name, ws in sockets.items()}  # type: ignore[arg-type]
    hub.subscribe(clients["a"], ["AAPL"])
    hub.subscribe(clients["b"], ["AAPL", "MSFT"])
    hub.subscribe(clients["c"], ["AAPL"])
    tasks = [asyncio.create_task(c.sender(heartbeat=60, send_timeout=1)) for c in clients.values()]
    for n in (1, 2):
        hub.dispatch(b"[" + quote("AAPL", n) + b"," + quote("MSFT", n) + b"]")
        await asyncio.sleep(0.02)
    for t in tasks:
        t.cancel()
    seen = {
        name: [sorted((q["symbol"], q["time"]) for q in f["data"]) for f in ws.frames]
        for name, ws in sockets.items()
    }
    assert seen["a"] == seen["c"] == [[("AAPL", 1)], [("AAPL", 2)]]
    assert seen["b"] == [[("AAPL", 1), ("MSFT", 1)], [("AAPL", 2), ("MSFT", 2)]]
