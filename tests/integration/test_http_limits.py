"""Issue 21, items 8-10, over real sockets against a real datahub and Redis: no body is
read before its sender is authenticated and none without a cap; reading a request's
head and body is bounded in time; connections per client and in all are capped; money
fields and admin bodies are strictly typed. (The same attacks against a real
``trader-ops run``, with memory, open files and the webhook's p99: test_slow_clients.py.)"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.datahub.app import create_app
from tests.apps import serve, settings_for
from tests.servers import RedisServer
from tests.support.limits import PERMISSIVE_YAML
from tests.support.poll import until_json

PASS = "limits passphrase"
ADMIN = "limits-admin-key"
TIMEOUT = 1.0  # header and body deadlines in these tests
PER_CLIENT = 8


@pytest.fixture
async def hub(
    redis_srv: RedisServer, redis: object, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, int]]:
    risk = tmp_path / "risk.yaml"
    risk.write_text(PERMISSIVE_YAML)
    settings = settings_for(
        redis_srv.url,
        symbols=["AAPL", "MSFT"],
        webhook_passphrase=PASS,
        admin_api_key=ADMIN,
        risk_config=risk,
        http_header_timeout_seconds=TIMEOUT,
        http_body_timeout_seconds=TIMEOUT,
        http_max_connections_per_client=PER_CLIENT,
    )
    async with (
        serve(create_app(settings)) as url,
        httpx.AsyncClient(base_url=url, timeout=10, headers={"X-API-Key": ADMIN}) as client,
    ):
        yield client, int(url.rsplit(":", 1)[1])


async def _open(
    port: int, source: str = "127.0.0.1"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def _answer(reader: asyncio.StreamReader, within: float) -> bytes | None:
    """Everything the server sends until it closes; None if it is still open after ``within``."""
    data = b""
    try:
        async with asyncio.timeout(within):
            while chunk := await reader.read(65536):
                data += chunk
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return data


def _head(path: str, length: int | None, *extra: str, method: str = "POST") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    lines += [f"Content-Length: {length}"] if length is not None else []
    return ("\r\n".join([*lines, *extra]) + "\r\n\r\n").encode()


# -- item 8: authenticate before reading, cap every body --------------------------------


@pytest.mark.parametrize("key", [None, "wrong"])
async def test_an_unauthenticated_body_is_refused_before_it_is_read(
    hub: tuple[httpx.AsyncClient, int], key: str | None
) -> None:
    """A 50 MB body announced to the kill switch: 401 after the headers alone, and the
    connection closed once the short linger for the unwanted body is over."""
    _, port = hub
    reader, writer = await _open(port)
    extra = [f"X-API-Key: {key}"] if key is not None else []
    writer.write(_head("/api/v1/risk/kill-switch", 50_000_000, *extra) + b'{"state": "HAL')
    answer = await _answer(reader, within=TIMEOUT + 3)
    writer.close()
    assert answer is not None, "the server waited for the 50 MB body"
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]


async def test_a_body_without_the_key_is_refused_on_any_route_but_the_webhook(
    hub: tuple[httpx.AsyncClient, int],
) -> None:
    client, _ = hub
    for method, path in [("POST", "/api/v1/flatten"), ("GET", "/udf/config"), ("PUT", "/x")]:
        r = await client.request(method, path, content=b"{}", headers={"X-API-Key": ""})
        assert r.status_code == 401, (method, path, r.text)
    # the webhook authenticates inside its body: its own answer, not the admin key's
    r = await client.post("/webhook/tradingview", content=b'{"passphrase": "no"}')
    assert r.status_code == 401 and r.json()["error"] == "wrong or missing passphrase"


async def test_an_admin_body_over_the_cap_is_413_before_it_is_read(
    hub: tuple[httpx.AsyncClient, int],
) -> None:
    """With the right key: a Content-Length over 8 KiB is 413 at once; a chunked body is
    cut off with 413 once it passes the cap."""
    client, port = hub
    reader, writer = await _open(port)
    writer.write(_head("/api/v1/risk/kill-switch", 10_000_000, f"X-API-Key: {ADMIN}"))
    answer = await _answer(reader, within=3)
    writer.close()
    assert answer is not None and answer.startswith(b"HTTP/1.1 413"), answer

    reader, writer = await _open(port)
    chunk = b'{"state": "HALTED", "reason": "' + b"x" * 9000
    writer.write(
        _head("/api/v1/risk/kill-switch", None, f"X-API-Key: {ADMIN}", "Transfer-Encoding: chunked")
        + f"{len(chunk):x}\r\n".encode()
        + chunk
        + b"\r\n"
    )
    answer = await _answer(reader, within=3)  # (the rest of the body is never sent)
    writer.close()
    assert answer is not None and answer.startswith(b"HTTP/1.1 413"), answer
    await until_json(client, "/api/v1/risk", lambda b: b["kill_switch"]["state"] == "ACTIVE")


# -- item 9: deadlines on reading a request, connection caps -----------------------------


@pytest.mark.parametrize(
    "sent",
    [
        pytest.param(b"", id="nothing"),
        pytest.param(
            b"POST /webhook/tradingview HTTP/1.1\r\nHost: 127.0.0.1\r\nCont", id="half-head"
        ),
    ],
)
async def test_a_connection_that_does_not_finish_its_head_is_closed(
    hub: tuple[httpx.AsyncClient, int], sent: bytes
) -> None:
    _, port = hub
    reader, writer = await _open(port)
    writer.write(sent)
    answer = await _answer(reader, within=TIMEOUT + 3)
    writer.close()
    assert answer is not None, "the connection is still open past the header deadline"


async def test_a_body_that_does_not_arrive_is_408_and_closed(
    hub: tuple[httpx.AsyncClient, int],
) -> None:
    """One byte of a 1,000-byte webhook body: 408 once the body deadline passes."""
    _, port = hub
    reader, writer = await _open(port)
    writer.write(_head("/webhook/tradingview", 1000) + b"{")
    answer = await _answer(reader, within=TIMEOUT + 3)
    writer.close()
    assert answer is not None, "the connection is still open past the body deadline"
    assert answer.startswith(b"HTTP/1.1 408"), answer


async def test_a_trickled_body_the_app_refused_does_not_hold_the_connection(
    hub: tuple[httpx.AsyncClient, int],
) -> None:
    """Refused at once, the client goes on sending its body a byte at a time: the body
    deadline still closes the connection."""
    _, port = hub
    reader, writer = await _open(port)
    writer.write(_head("/api/v1/flatten", 1000, "Connection: keep-alive"))
    started = time.monotonic()
    closed = False
    while time.monotonic() - started < TIMEOUT + 3:
        try:
            writer.write(b"x")
            await writer.drain()
        except (ConnectionError, OSError):
            closed = True
            break
        if reader.at_eof():
            closed = True
            break
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(reader.read(65536), 0.2)
    writer.close()
    assert closed, "a trickling client held the connection past the body deadline"


async def test_an_oversize_head_is_431(hub: tuple[httpx.AsyncClient, int]) -> None:
    _, port = hub
    reader, writer = await _open(port)
    writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Junk: " + b"a" * 200_000)
    answer = await _answer(reader, within=TIMEOUT + 3)
    writer.close()
    assert answer is not None and answer.startswith(b"HTTP/1.1 431"), answer


async def test_connections_per_client_address_are_capped(
    hub: tuple[httpx.AsyncClient, int],
) -> None:
    """127.0.0.2 holds its 8 connections; the 9th is refused with 429; 127.0.0.1 is
    still served, and the slots come back when the connections close."""
    client, port = hub
    held = [await _open(port, "127.0.0.2") for _ in range(PER_CLIENT)]
    reader, writer = await _open(port, "127.0.0.2")
    answer = await _answer(reader, within=3)
    writer.close()
    assert answer is not None and answer.startswith(b"HTTP/1.1 429"), answer
    assert (await client.get("/health")).status_code == 200
    for _, w in held:
        w.close()
    await asyncio.sleep(0.3)
    reader, writer = await _open(port, "127.0.0.2")
    writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    answer = await _answer(reader, within=3)
    assert answer is not None and answer.startswith(b"HTTP/1.1 200"), answer


# -- item 10: strict types on money fields and admin bodies -------------------------------


def _alert(**kw: Any) -> bytes:
    return json.dumps({"passphrase": PASS, "ticker": "AAPL", "action": "buy", **kw}).encode()


@pytest.mark.parametrize("field", ["quantity", "price", "stop_loss", "take_profit"])
async def test_a_boolean_is_never_a_number_in_an_alert_a_numeric_string_is(
    hub: tuple[httpx.AsyncClient, int], field: str
) -> None:
    """``true`` is not 1 share; ``"3"`` (TradingView's ``{{strategy.order.contracts}}``
    in a quoted message) is still 3."""
    client, _ = hub
    extra: dict[str, Any] = {"order_type": "limit", "price": 100} if field != "price" else {}
    r = await client.post(
        "/webhook/tradingview", content=_alert(alert_id=f"b-{field}", **extra, **{field: True})
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == field
    assert (await client.get("/api/v1/orders")).json()["orders"] == []
    if field == "quantity":
        r = await client.post("/webhook/tradingview", content=_alert(alert_id="s-1", quantity="3"))
        assert r.status_code == 202, r.text
        assert r.json()["quantity"] == 3


@pytest.mark.parametrize(
    "body",
    [
        {"state": "HALTED", "flatten": "yes"},
        {"state": "HALTED", "flatten": 1},
        {"state": "HALTED", "flaten": True},
    ],
    ids=["flatten-yes", "flatten-1", "unknown-field"],
)
async def test_kill_switch_body_is_strict(
    hub: tuple[httpx.AsyncClient, int], body: dict[str, Any]
) -> None:
    client, _ = hub
    r = await client.post("/api/v1/risk/kill-switch", json=body)
    assert r.status_code == 422, r.text


async def test_a_kill_switch_reason_is_capped_at_500_characters(
    hub: tuple[httpx.AsyncClient, int],
) -> None:
    client, _ = hub
    r = await client.post("/api/v1/risk/kill-switch", json={"state": "HALTED", "reason": "x" * 501})
    assert r.status_code == 422, r.text
    assert len(r.content) < 4096  # the error does not echo the input back
    r = await client.post("/api/v1/risk/kill-switch", json={"state": "HALTED", "reason": "r" * 500})
    assert r.status_code == 200, r.text
    risk = await until_json(client, "/api/v1/risk", lambda b: b["kill_switch"]["state"] == "HALTED")
    assert risk["kill_switch"]["reason"] == "r" * 500


async def test_flatten_body_is_strict(hub: tuple[httpx.AsyncClient, int]) -> None:
    client, _ = hub
    for body in ({"flatten": "yes"}, {"symbl": "AAPL"}, {"symbol": 1}):
        r = await client.post("/api/v1/flatten", json=body)
        assert r.status_code == 422, (body, r.text)
