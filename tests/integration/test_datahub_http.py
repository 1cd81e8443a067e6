"""The datahub over real HTTP against a real redis-server."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import pytest

from app.datahub.app import create_app
from tests.apps import serve, settings_for
from tests.servers import RedisServer, free_port
from tests.support.poll import until_json


@pytest.fixture
async def hub(redis_srv: RedisServer, redis: object) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings_for(redis_srv.url, symbols=["AAPL", "MSFT", "SPY"]))
    async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        yield client


async def test_health_ready_and_metrics(hub: httpx.AsyncClient) -> None:
    assert (await hub.get("/health")).json() == {"status": "ok"}
    # ready once the account's engine holds its lease (a moment after start on a busy box;
    # until then 503 naming what is missing)
    await until_json(hub, "/ready", lambda b: b["status"] == "ready", timeout=20)
    await hub.get("/udf/time")
    text = (await hub.get("/metrics")).text
    assert 'traderops_http_requests_total{method="GET",route="/udf/time",status="200"}' in text
    assert "traderops_ws_clients" in text


async def test_ready_is_503_with_the_reason_when_redis_is_down() -> None:
    app = create_app(settings_for(f"redis://127.0.0.1:{free_port()}/0"))
    async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=20) as client:
        assert (await client.get("/health")).status_code == 200
        ready = await client.get("/ready")
        assert ready.status_code == 503
        assert "redis" in ready.json()["problems"]


async def test_udf_config_symbols_search_time(hub: httpx.AsyncClient) -> None:
    config = (await hub.get("/udf/config")).json()
    assert "1D" in config["supported_resolutions"] and config["supports_search"] is True
    sym = (await hub.get("/udf/symbols", params={"symbol": "NASDAQ:aapl"})).json()
    assert sym["name"] == "AAPL" and sym["pricescale"] == 100 and sym["has_intraday"] is True
    unknown = await hub.get("/udf/symbols", params={"symbol": "NOPE"})
    assert unknown.status_code == 404 and unknown.json() == {
        "s": "error",
        "errmsg": "unknown_symbol",
    }
    found = (await hub.get("/udf/search", params={"query": "ms", "limit": 5})).json()
    assert found[0]["symbol"] == "MSFT"
    assert abs(int((await hub.get("/udf/time")).text) - time.time()) < 5


async def test_udf_history_shape_and_countback(hub: httpx.AsyncClient) -> None:
    now = int(time.time())
    r = await hub.get(
        "/udf/history", params={"symbol": "AAPL", "resolution": "5", "from": now - 86400, "to": now}
    )
    body = r.json()
    assert r.status_code == 200 and body["s"] == "ok"
    lengths = {len(body[k]) for k in "tohlcv"}
    assert len(lengths) == 1
    assert body["t"] == sorted(body["t"]) and body["t"][0] >= now - 86400 and body["t"][-1] < now
    assert all(isinstance(x, float) for x in body["c"])
    cb = (
        await hub.get(
            "/udf/history",
            params={"symbol": "AAPL", "resolution": "D", "to": now, "countback": 300},
        )
    ).json()
    assert len(cb["t"]) == 300
    # a warm cache gives the identical answer
    again = (
        await hub.get(
            "/udf/history",
            params={"symbol": "AAPL", "resolution": "D", "to": now, "countback": 300},
        )
    ).json()
    assert again == cb


async def test_udf_history_no_data_gives_next_time(hub: httpx.AsyncClient) -> None:
    now = int(time.time())
    body = (
        await hub.get(
            "/udf/history",
            params={
                "symbol": "SPY",
                "resolution": "D",
                "from": now + 86400 * 3,
                "to": now + 86400 * 9,
            },
        )
    ).json()
    assert body["s"] == "no_data" and body["nextTime"] <= now
    old = (
        await hub.get(
            "/udf/history", params={"symbol": "SPY", "resolution": "D", "from": 0, "to": 86400 * 30}
        )
    ).json()
    assert old == {"s": "no_data"}


@pytest.mark.parametrize(
    ("params", "status", "fragment"),
    [
        ({"symbol": "AAPL", "resolution": "7", "from": 0, "to": 10}, 400, "unsupported resolution"),
        ({"symbol": "NOPE", "resolution": "D", "from": 0, "to": 10}, 404, "unknown symbol"),
        (
            {"symbol": "AAPL", "resolution": "D", "from": 100, "to": 10},
            400,
            "from must be before to",
        ),
        (
            {"symbol": "AAPL", "resolution": "D", "from": "abc", "to": 10},
            400,
            "from must be a number",
        ),
        ({"symbol": "AAPL", "resolution": "1", "from": 0, "to": 2_000_000_000}, 400, "maximum"),
        (
            {"symbol": "AAPL", "resolution": "D", "to": 10, "countback": 10_000_000},
            400,
            "countback",
        ),
        ({"resolution": "D", "from": 0, "to": 10}, 400, "symbol is required"),
    ],
)
async def test_udf_history_bad_input_is_a_udf_error(
    hub: httpx.AsyncClient, params: dict[str, object], status: int, fragment: str
) -> None:
    r = await hub.get("/udf/history", params=params)
    assert r.status_code == status
    body = r.json()
    assert body["s"] == "error" and fragment in body["errmsg"]


async def test_udf_quotes_and_marks(hub: httpx.AsyncClient) -> None:
    body = (await hub.get("/udf/quotes", params={"symbols": "AAPL,NOPE"})).json()
    assert body["s"] == "ok"
    ok, bad = body["d"]
    assert ok["s"] == "ok" and ok["n"] == "AAPL" and ok["v"]["bid"] < ok["v"]["ask"]
    assert bad == {"s": "error", "n": "NOPE", "v": {}}
    # marks are our fills: private (this hub has no admin key, so they are off)
    r = await hub.get(
        "/udf/marks", params={"symbol": "AAPL", "from": 0, "to": 10, "resolution": "D"}
    )
    assert r.status_code == 503 and "TRADEROPS_ADMIN_API_KEY" in r.text


async def test_rest_quotes_and_history(hub: httpx.AsyncClient) -> None:
    r = await hub.get("/api/v1/quotes", params={"symbols": "aapl,MSFT,NOPE"})
    assert r.status_code == 200
    body = r.json()
    assert set(body["quotes"]) == {"AAPL", "MSFT"} and body["unknown"] == ["NOPE"]
    assert (await hub.get("/api/v1/quotes", params={"symbols": "NOPE"})).status_code == 404
    assert (await hub.get("/api/v1/quotes", params={"symbols": ""})).status_code == 400
    assert (await hub.get("/api/v1/quotes", params={"symbols": "A;B"})).status_code == 400
    h = (
        await hub.get(
            "/api/v1/history", params={"symbol": "SPY", "resolution": "60", "countback": 24}
        )
    ).json()
    assert h["symbol"] == "SPY" and len(h["bars"]) == 24
    assert set(h["bars"][0]) == {"time", "open", "high", "low", "close", "volume"}
    bad = await hub.get(
        "/api/v1/history", params={"symbol": "SPY", "resolution": "60", "from": "x"}
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "from"
    assert (
        await hub.get("/api/v1/history", params={"symbol": "SPY", "resolution": "9"})
    ).status_code == 400


async def test_quotes_are_cached_in_redis(hub: httpx.AsyncClient, redis: object) -> None:
    from redis.asyncio import Redis

    assert isinstance(redis, Redis)
    await hub.get("/api/v1/quotes", params={"symbols": "AAPL"})
    ttl = await redis.pttl("traderops:quote:AAPL")
    assert 0 < ttl <= 1000


async def test_redis_outage_is_a_503_not_a_500(
    redis_srv: RedisServer, redis: object, tmp_path: object
) -> None:
    from pathlib import Path

    server = RedisServer(Path(str(tmp_path)) / "own-redis")
    server.start()
    app = create_app(settings_for(server.url, symbols=["AAPL"], admin_api_key="k"))
    try:
        async with (
            serve(app) as url,
            httpx.AsyncClient(base_url=url, timeout=20, headers={"X-API-Key": "k"}) as c,
        ):
            assert (await c.get("/api/v1/orders")).status_code == 200
            server.stop()
            for path in (
                "/api/v1/orders",
                "/api/v1/alerts",
                "/udf/history?symbol=AAPL&resolution=D&to=100000&countback=5",
            ):
                r = await c.get(path)
                assert r.status_code == 503, (path, r.status_code, r.text)
            server.start()
            for _ in range(50):
                if (await c.get("/api/v1/orders")).status_code == 200:
                    break
                await __import__("asyncio").sleep(0.1)
            assert (await c.get("/api/v1/orders")).status_code == 200
    finally:
        server.stop()
