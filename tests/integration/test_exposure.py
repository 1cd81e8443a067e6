"""Private trading data stays private (issue 15): order/fill events on /stream only after
the admin key, foreign Origins and Host names refused, marks and metrics behind keys,
binary frames answered and closed cleanly. Real datahub, real Redis, real sockets."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from redis.asyncio import Redis
from websockets.exceptions import ConnectionClosed, InvalidStatus

from app.datahub.app import create_app
from tests.apps import serve
from tests.integration.test_execution import ADMIN, alert, make_settings, post
from tests.integration.test_stream import recv_type, ws_url
from tests.servers import RedisServer

METRICS_TOKEN = "metrics-token-for-tests"


@pytest.fixture
def risk_file(tmp_path: Path) -> Path:
    from tests.integration.test_execution import RISK_YAML

    path = tmp_path / "risk.yaml"
    path.write_text(RISK_YAML)
    return path


@pytest.fixture
async def hub(redis_srv: RedisServer, redis: Redis, risk_file: Path) -> AsyncIterator[str]:
    app = create_app(make_settings(redis_srv.url, risk_file, metrics_token=METRICS_TOKEN))
    async with serve(app) as url:
        yield url


async def _types_until_quiet(ws: Any, seconds: float) -> list[str]:
    seen: list[str] = []
    try:
        async with asyncio.timeout(seconds):
            while True:
                seen.append(json.loads(await ws.recv())["type"])
    except TimeoutError:
        return seen


async def test_order_and_fill_events_only_reach_clients_with_the_admin_key(hub: str) -> None:
    async with (
        websockets.connect(ws_url(hub)) as anonymous,
        websockets.connect(ws_url(hub)) as trader,
        httpx.AsyncClient(base_url=hub) as c,
    ):
        await recv_type(anonymous, "welcome")
        await recv_type(trader, "welcome")
        await trader.send(json.dumps({"op": "auth", "key": ADMIN}))
        await recv_type(trader, "authenticated")
        r = await post(c, alert(alert_id="private-1", quantity=2))
        assert r.status_code == 202, r.text
        order = await recv_type(trader, "order")
        assert order["data"]
        await recv_type(trader, "fill")
        seen = await _types_until_quiet(anonymous, 1.0)
        assert "order" not in seen and "fill" not in seen, seen


async def test_a_wrong_stream_key_is_refused_and_closed(hub: str) -> None:
    async with websockets.connect(ws_url(hub)) as ws:
        await ws.send(json.dumps({"op": "auth", "key": "guess"}))
        assert (await recv_type(ws, "error"))["error"] == "wrong admin key or token"
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


async def test_a_binary_frame_gets_an_error_and_a_clean_close(hub: str) -> None:
    async with websockets.connect(ws_url(hub)) as ws:
        await recv_type(ws, "welcome")
        await ws.send(b"\x00\x01binary")
        assert "binary" in (await recv_type(ws, "error"))["error"]
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1003


async def test_a_foreign_origin_cannot_open_the_stream(hub: str) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(ws_url(hub), origin="https://evil.example"):  # type: ignore[arg-type]
            pass
    assert refused.value.response.status_code == 403
    own = hub  # the datahub's own origin (what the console sends) is fine
    async with websockets.connect(ws_url(hub), origin=own) as ws:  # type: ignore[arg-type]
        await recv_type(ws, "welcome")


async def test_a_rebinding_host_name_is_refused(hub: str) -> None:
    async with httpx.AsyncClient(base_url=hub, headers={"X-API-Key": ADMIN}) as c:
        r = await c.get("/udf/config", headers={"Host": "attacker.example:8000"})
        assert r.status_code == 400 and "TRADEROPS_ALLOWED_HOSTS" in r.text
        assert (await c.get("/udf/config", headers={"Host": "localhost:8000"})).status_code == 200


async def test_marks_need_the_admin_key(hub: str) -> None:
    params = {"symbol": "AAPL", "from": 0, "to": 2_000_000_000, "resolution": "1"}
    async with httpx.AsyncClient(base_url=hub) as c:
        assert (await c.get("/udf/marks", params=params)).status_code == 401
        ok = await c.get("/udf/marks", params=params, headers={"X-API-Key": ADMIN})
        assert ok.status_code == 200 and "id" in ok.json()


async def test_metrics_need_the_token_when_one_is_set(hub: str) -> None:
    async with httpx.AsyncClient(base_url=hub) as c:
        r = await c.get("/metrics")
        assert r.status_code == 401 and "traderops_" not in r.text
        ok = await c.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert ok.status_code == 200 and "traderops_" in ok.text


async def test_api_docs_load_nothing_from_a_cdn(hub: str, redis_srv: RedisServer) -> None:
    async with httpx.AsyncClient(base_url=hub) as c:
        assert (await c.get("/docs")).status_code == 404  # off unless TRADEROPS_API_DOCS
        assert (await c.get("/redoc")).status_code == 404
        assert (await c.get("/openapi.json")).status_code == 200
    from tests.apps import settings_for

    app = create_app(settings_for(redis_srv.url, api_docs=True))
    async with serve(app) as url, httpx.AsyncClient(base_url=url) as c:
        page = await c.get("/docs")
        assert "cdn.jsdelivr.net" not in page.text and "unpkg" not in page.text
        assert page.status_code in (200, 503)  # 503: trader-ops[docs] not installed


async def test_a_client_gone_mid_body_is_an_abort_not_a_server_error(
    hub: str, caplog: pytest.LogCaptureFixture
) -> None:
    from prometheus_client import REGISTRY

    def count(status: str) -> float:
        labels = {"route": "/webhook/tradingview", "method": "POST", "status": status}
        return REGISTRY.get_sample_value("traderops_http_requests_total", labels) or 0.0

    aborts, errors = count("499"), count("500")
    host, port = hub.removeprefix("http://").split(":")
    _, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST /webhook/tradingview HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b'Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n{"ticker": '
    )
    await writer.drain()
    await asyncio.sleep(0.2)
    writer.close()  # gone before the body is complete
    await writer.wait_closed()
    for _ in range(100):
        if count("499") > aborts:
            break
        await asyncio.sleep(0.05)
    assert count("499") == aborts + 1 and count("500") == errors
    assert "Traceback" not in caplog.text and "Exception in ASGI" not in caplog.text


def test_behind_a_proxy_the_public_host_name_is_not_refused_by_default() -> None:
    """The playbook: datahub on 127.0.0.1 behind nginx, which sends Host: <public name>."""
    from app.datahub.guards import effective_allowed_hosts
    from tests.apps import settings_for

    assert effective_allowed_hosts(settings_for("redis://x", trusted_proxies="127.0.0.1")) is None
    assert effective_allowed_hosts(settings_for("redis://x")) == {"localhost", "127.0.0.1", "::1"}
    pinned = settings_for("redis://x", trusted_proxies="127.0.0.1", allowed_hosts="trade.example")
    assert effective_allowed_hosts(pinned) == {"trade.example"}


async def test_a_short_lived_token_opens_the_private_events(hub: str) -> None:
    async with httpx.AsyncClient(base_url=hub) as c:
        assert (await c.post("/api/v1/stream-token")).status_code == 401
        r = await c.post("/api/v1/stream-token", headers={"X-API-Key": ADMIN})
        assert r.status_code == 200 and r.json()["expires_in"] == 60
        token = r.json()["token"]
        assert ADMIN not in token
    async with websockets.connect(ws_url(hub)) as ws:
        await ws.send(json.dumps({"op": "auth", "token": token}))
        await recv_type(ws, "authenticated")
    expired = token.split(".")[0]
    async with websockets.connect(ws_url(hub)) as ws:  # a forged expiry does not verify
        await ws.send(json.dumps({"op": "auth", "token": f"{int(expired) + 3600}.{token[-64:]}"}))
        assert "wrong" in (await recv_type(ws, "error"))["error"]
