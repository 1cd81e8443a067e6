"""WebSocket /stream against real Redis pub/sub, one or two datahub processes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import websockets

from app.datahub.app import create_app
from tests.apps import serve, settings_for
from tests.servers import RedisServer


async def recv_type(ws: Any, wanted: str, timeout: float = 5.0) -> dict[str, Any]:
    """Next message of type ``wanted`` (skipping heartbeats, quotes, ...)."""
    async with asyncio.timeout(timeout):
        while True:
            msg = json.loads(await ws.recv())
            if msg["type"] == wanted:
                return msg


def ws_url(http_url: str) -> str:
    return http_url.replace("http://", "ws://") + "/stream"


async def test_subscribe_receive_unsubscribe(redis_srv: RedisServer, redis: object) -> None:
    app = create_app(
        settings_for(redis_srv.url, symbols=["AAPL", "MSFT", "SPY"], sim_quote_rate=20)
    )
    async with serve(app) as url, websockets.connect(ws_url(url)) as ws:
        assert (await recv_type(ws, "welcome"))["heartbeat"] > 0
        await ws.send(json.dumps({"op": "subscribe", "symbols": ["aapl", "MSFT"]}))
        assert (await recv_type(ws, "subscribed"))["symbols"] == ["AAPL", "MSFT"]
        seen: set[str] = set()
        for _ in range(10):
            batch = await recv_type(ws, "quotes")
            seen |= {q["symbol"] for q in batch["data"]}
            assert all(q["bid"] < q["ask"] for q in batch["data"])
        assert seen == {"AAPL", "MSFT"}
        await ws.send(json.dumps({"op": "unsubscribe", "symbols": ["MSFT"]}))
        assert (await recv_type(ws, "unsubscribed"))["symbols"] == ["AAPL"]
        for _ in range(5):
            batch = await recv_type(ws, "quotes")
        assert {q["symbol"] for q in batch["data"]} == {"AAPL"}


async def test_bad_messages_get_errors_and_the_connection_stays(
    redis_srv: RedisServer, redis: object
) -> None:
    app = create_app(settings_for(redis_srv.url, symbols=["AAPL"]))
    async with serve(app) as url, websockets.connect(ws_url(url)) as ws:
        await ws.send("{not json")
        assert (await recv_type(ws, "error"))["error"] == "malformed JSON"
        await ws.send(json.dumps({"op": "dance"}))
        assert "unknown op" in (await recv_type(ws, "error"))["error"]
        await ws.send(json.dumps({"op": "subscribe", "symbols": "AAPL"}))
        assert "list of strings" in (await recv_type(ws, "error"))["error"]
        await ws.send(json.dumps({"op": "subscribe", "symbols": ["NOPE", "AAPL"]}))
        err = await recv_type(ws, "error")
        assert err["symbols"] == ["NOPE"]
        assert (await recv_type(ws, "subscribed"))["symbols"] == ["AAPL"]
        await ws.send(json.dumps({"op": "ping"}))
        await recv_type(ws, "pong")


async def test_client_on_either_instance_gets_every_quote(
    redis_srv: RedisServer, redis: object
) -> None:
    """Two datahubs on one Redis: one publishes the feed, a client on the other still sees it."""
    symbols = ["AAPL", "SPY"]
    app_a = create_app(settings_for(redis_srv.url, symbols=symbols, sim_quote_rate=20))
    app_b = create_app(settings_for(redis_srv.url, symbols=symbols, sim_quote_rate=20))
    async with serve(app_a) as url_a, serve(app_b) as url_b:
        await asyncio.sleep(0.5)
        leaders = [app.state.services.publisher.leader for app in (app_a, app_b)]
        assert sorted(leaders) == [False, True], "exactly one instance publishes"
        standby_url = url_b if leaders[0] else url_a
        async with websockets.connect(ws_url(standby_url)) as ws:
            await ws.send(json.dumps({"op": "subscribe", "symbols": symbols}))
            await recv_type(ws, "subscribed")
            times = []
            for _ in range(6):
                batch = await recv_type(ws, "quotes")
                times += [q["time"] for q in batch["data"]]
            assert len(set(times)) > 2, "live quotes keep arriving through the other instance"


async def test_stream_survives_a_redis_restart(redis_srv: RedisServer, redis: object) -> None:
    app = create_app(settings_for(redis_srv.url, symbols=["AAPL"], sim_quote_rate=20))
    async with serve(app) as url, websockets.connect(ws_url(url)) as ws:
        await ws.send(json.dumps({"op": "subscribe", "symbols": ["AAPL"]}))
        await recv_type(ws, "quotes")
        redis_srv.restart()
        # after the restart the hub resubscribes and the publisher re-takes the lease
        deadline = asyncio.get_running_loop().time() + 15
        last = 0.0
        fresh = 0
        while fresh < 3:
            assert asyncio.get_running_loop().time() < deadline, "quotes did not resume"
            batch = await recv_type(ws, "quotes", timeout=15)
            t = max(q["time"] for q in batch["data"])
            if t > last:
                fresh += 1
                last = t


async def test_compression_is_off_unless_asked_for(redis_srv: RedisServer, redis: object) -> None:
    """A browser offers permessage-deflate; the datahub declines it by default (CPU per
    frame per client) and accepts it with TRADEROPS_WS_COMPRESSION=true."""
    for enabled in (False, True):
        app = create_app(settings_for(redis_srv.url, symbols=["AAPL"], ws_compression=enabled))
        async with serve(app) as url, websockets.connect(ws_url(url), compression="deflate") as ws:
            agreed = ws.response.headers.get("Sec-WebSocket-Extensions", "")
            assert ("permessage-deflate" in agreed) is enabled, agreed
            await ws.send(json.dumps({"op": "subscribe", "symbols": ["AAPL"]}))
            assert (await recv_type(ws, "quotes"))["data"][0]["symbol"] == "AAPL"
