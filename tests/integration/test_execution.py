"""Webhook -> risk -> paper broker -> positions and P&L, over real HTTP and a real Redis."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from app.datahub.app import create_app
from tests.apps import serve, settings_for
from tests.servers import RedisServer, free_port
from tests.support.poll import until_json

PASS = "correct horse battery staple"
HMAC_KEY = "kairos-signing-key"
ADMIN = "admin-key-for-tests"
SYMBOLS = ["AAPL", "MSFT", "SPY", "TSLA"]

RISK_YAML = """
rate_limit:
  global: {max_orders: 1000, window_seconds: 60}
  per_symbol: {max_orders: 1000, window_seconds: 60}
duplicate: null
price_collar: null
sizing:
  default: {mode: signal, quantity: 1}
  strategies:
    pct: {mode: percent_equity, percent: 5}
"""


@pytest.fixture
def risk_file(tmp_path: Path) -> Path:
    path = tmp_path / "risk.yaml"
    path.write_text(RISK_YAML)
    return path


def make_settings(redis_url: str, risk_file: Path, **kw: Any) -> Any:
    return settings_for(
        redis_url,
        symbols=SYMBOLS,
        webhook_passphrase=PASS,
        webhook_hmac_key=HMAC_KEY,
        admin_api_key=ADMIN,
        risk_config=risk_file,
        sim_quote_rate=20,
        **kw,
    )


@pytest.fixture
async def api(
    redis_srv: RedisServer, redis: Redis, risk_file: Path
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(make_settings(redis_srv.url, risk_file))
    async with (
        serve(app) as url,
        httpx.AsyncClient(base_url=url, timeout=10, headers={"X-API-Key": ADMIN}) as client,
    ):
        client.app = app  # type: ignore[attr-defined]
        yield client


def alert(**kw: Any) -> dict[str, Any]:
    return {"passphrase": PASS, "ticker": "AAPL", "action": "buy", "quantity": 10, **kw}


async def post(client: httpx.AsyncClient, body: Any, **kw: Any) -> httpx.Response:
    return await client.post("/webhook/tradingview", content=json.dumps(body), **kw)


async def until_engine(client: httpx.AsyncClient, account: str = "default") -> Any:
    """The engine this app's process runs for ``account``, once it holds the account."""
    for _ in range(200):
        engine = client.app.state.services.execution.engine(account)  # type: ignore[attr-defined]
        if engine is not None:
            return engine
        await asyncio.sleep(0.025)
    raise AssertionError(f"no engine holds {account}")


def position(body: dict[str, Any], symbol: str) -> int:
    return next((p["quantity"] for p in body["positions"] if p["symbol"] == symbol), 0)


async def test_long_round_trip_to_realised_pnl(api: httpx.AsyncClient) -> None:
    r = await post(api, alert(alert_id="long-1"))
    assert r.status_code == 202, r.text
    decision = r.json()
    assert decision["status"] == "accepted" and decision["order_id"]
    order = await until_json(
        api, f"/api/v1/orders/{decision['order_id']}", lambda o: o["status"] == "filled"
    )
    assert order["filled_quantity"] == 10 and order["avg_fill_price"] > 0
    await until_json(api, "/api/v1/positions", lambda b: position(b, "AAPL") == 10)
    r = await post(api, alert(action="exit", alert_id="long-2", quantity=None))
    assert r.status_code == 202 and r.json()["quantity"] == 10
    await until_json(api, "/api/v1/positions", lambda b: position(b, "AAPL") == 0)
    account = (await api.get("/api/v1/account")).json()
    assert account["open_positions"] == 0
    # bought at the ask, sold at the bid, with slippage: a small realised loss
    assert -20 < account["realized_pnl_today"] < 0
    assert account["cash"] == pytest.approx(100_000 + account["realized_pnl_today"], abs=0.01)


async def test_short_and_reversal(api: httpx.AsyncClient) -> None:
    r = await post(api, alert(ticker="MSFT", action="sell", quantity=5, alert_id="short-1"))
    assert r.status_code == 202
    await until_json(api, "/api/v1/positions", lambda b: position(b, "MSFT") == -5)
    # a buy of 8 while short 5 covers 5 and opens 3 long: two orders
    r = await post(api, alert(ticker="MSFT", action="buy", quantity=8, alert_id="short-2"))
    assert r.status_code == 202 and "2 orders" in r.json()["message"]
    await until_json(api, "/api/v1/positions", lambda b: position(b, "MSFT") == 3)
    orders = (await api.get("/api/v1/orders")).json()["orders"]
    intents = sorted(o["request"]["intent"] for o in orders if o["request"]["symbol"] == "MSFT")
    assert intents == ["buy", "buy_to_cover", "sell_short"]


async def test_percent_of_equity_sizing(api: httpx.AsyncClient) -> None:
    r = await post(api, alert(ticker="SPY", quantity=None, strategy="pct", alert_id="pct-1"))
    assert r.status_code == 202
    quote = (await api.get("/api/v1/quotes", params={"symbols": "SPY"})).json()["quotes"]["SPY"]
    assert (
        r.json()["quantity"] == int(100_000 * 0.05 // quote["ask"])
        or abs(r.json()["quantity"] - 5000 / quote["last"]) < 1
    )


async def test_hundred_concurrent_copies_place_one_order(api: httpx.AsyncClient) -> None:
    body = alert(alert_id="storm-1", quantity=3)
    responses = await asyncio.gather(*(post(api, body) for _ in range(100)))
    decisions = [r.json() for r in responses]
    assert {d["order_id"] for d in decisions} == {decisions[0]["order_id"]}
    assert sum(not d["duplicate"] for d in decisions) == 1
    await until_json(api, "/api/v1/positions", lambda b: position(b, "AAPL") == 3)
    orders = (await api.get("/api/v1/orders")).json()["orders"]
    assert len([o for o in orders if o["request"]["alert_id"] == "storm-1"]) == 1


async def test_alert_without_id_is_deduplicated_by_content(api: httpx.AsyncClient) -> None:
    body = alert(time=int(time.time()) - 60, strategy="s1", quantity=2)
    body.pop("alert_id", None)
    first, second = (await post(api, body)).json(), (await post(api, body)).json()
    assert first["order_id"] == second["order_id"] and second["duplicate"] is True


async def test_an_alert_without_id_is_new_unless_the_same_body_repeats_within_the_window(
    redis_srv: RedisServer, redis: Redis, risk_file: Path
) -> None:
    """A plain TradingView alert has neither ``alert_id`` nor ``time``: a later alert of the
    same strategy, ticker and action is a new one (any quantity, any day), and only the
    same body within TRADEROPS_ALERT_REPEAT_SECONDS is a repeat."""
    app = create_app(make_settings(redis_srv.url, risk_file, alert_repeat_seconds=1))
    async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        plain = {"passphrase": PASS, "ticker": "AAPL", "action": "buy", "quantity": 2}
        first = (await post(client, plain)).json()
        repeat = (await post(client, plain)).json()
        assert repeat["duplicate"] is True and repeat["order_id"] == first["order_id"]
        bigger = (await post(client, {**plain, "ticker": "NASDAQ:AAPL", "quantity": 3})).json()
        assert bigger["status"] == "accepted" and not bigger.get("duplicate")
        assert bigger["quantity"] == 3 and bigger["order_id"] != first["order_id"]
        await asyncio.sleep(1.2)  # past the repeat window (a Redis key's TTL)
        later = (await post(client, plain)).json()
        assert later["status"] == "accepted" and not later.get("duplicate")
        assert later["order_id"] not in (first["order_id"], bigger["order_id"])
        same_time = {**plain, "time": int(time.time())}
        a = (await post(client, {**same_time, "quantity": 10})).json()
        b = (await post(client, {**same_time, "quantity": 1})).json()
        assert (a["quantity"], b["quantity"]) == (10, 1) and not b.get("duplicate")


async def test_positions_are_kept_per_strategy_and_exit_closes_only_its_own(
    api: httpx.AsyncClient,
) -> None:
    """Positions show each strategy's part; a sell of one strategy reduces its part, not
    another's; ``exit`` closes the alert's strategy's part; ``flatten`` everything."""
    await post(api, alert(alert_id="ps-1", strategy="momentum", quantity=10))
    await post(api, alert(alert_id="ps-2", strategy="s1", quantity=4))
    await post(api, alert(alert_id="ps-3", strategy="s1", action="sell", quantity=1))

    async def parts() -> dict[str, int]:
        body = await until_json(
            api, "/api/v1/positions", lambda b: position(b, "AAPL") == 13, timeout=10
        )
        (row,) = [p for p in body["positions"] if p["symbol"] == "AAPL"]
        return {p["strategy"]: p["quantity"] for p in row["strategies"]}

    assert await parts() == {"momentum": 10, "s1": 3}
    out = (await post(api, alert(alert_id="ps-4", strategy="s1", action="exit"))).json()
    assert out["status"] == "accepted" and out["quantity"] == 3
    body = await until_json(
        api, "/api/v1/positions", lambda b: position(b, "AAPL") == 10, timeout=10
    )
    (row,) = [p for p in body["positions"] if p["symbol"] == "AAPL"]
    assert [(p["strategy"], p["quantity"]) for p in row["strategies"]] == [("momentum", 10)]
    again = (await post(api, alert(alert_id="ps-5", strategy="s1", action="exit"))).json()
    assert again["status"] == "ignored" and "strategy s1" in again["message"]
    flat = (await api.post("/api/v1/flatten", json={"symbol": "AAPL"})).json()
    assert flat
    body = await until_json(
        api, "/api/v1/positions", lambda b: position(b, "AAPL") == 0, timeout=10
    )
    assert body["positions"] == []


async def test_hmac_signed_alert(api: httpx.AsyncClient) -> None:
    signed = {"ticker": "SPY", "action": "buy", "quantity": 1, "alert_id": "signed-1"}
    raw = json.dumps({**signed, "time": int(time.time())}).encode()
    sig = hmac.new(HMAC_KEY.encode(), raw, hashlib.sha256).hexdigest()
    r = await api.post("/webhook/tradingview", content=raw, headers={"X-Signature": sig})
    assert r.status_code == 202
    bad = await api.post("/webhook/tradingview", content=raw, headers={"X-Signature": "0" * 64})
    assert bad.status_code == 401 and bad.json()["error"] == "bad X-Signature"


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ("{not json", 422, "not JSON"),
        ("BUY AAPL 10", 422, "buy|sell|exit|flatten"),
        ('["a"]', 422, "JSON object"),
        (alert(action="hold"), 422, "invalid alert"),
        (alert(ticker="NOPE"), 422, "unknown symbol"),
        (alert(ticker="AA;PL"), 422, "invalid alert"),
        (alert(quantity=-5), 422, "invalid alert"),
        (alert(quantity=10**9), 422, "invalid alert"),
        (alert(quantity=1.5), 422, "invalid alert"),
        (
            alert(option={"dte": 30, "legs": [{"right": "put", "side": "buy", "strike": 1}] * 5}),
            422,
            "2 to 4 legs",
        ),
        (alert(option={"right": "call", "dte": 30, "detla": 0.3}), 422, "detla"),
        (alert(option={"right": "call", "dte": 30}), 422, "one of delta, strike or atm_offset"),
        (alert(max_loss=500), 422, "for options"),
        (alert(passphrase="guess"), 401, "wrong or missing passphrase"),
        (
            {k: v for k, v in alert().items() if k != "passphrase"},
            401,
            "wrong or missing passphrase",
        ),
    ],
)
async def test_bad_input_is_a_clear_4xx_and_places_nothing(
    api: httpx.AsyncClient, body: Any, status: int, fragment: str
) -> None:
    content = body if isinstance(body, str) else json.dumps(body)
    r = await api.post("/webhook/tradingview", content=content)
    assert r.status_code == status
    assert fragment in json.dumps(r.json())
    assert PASS not in r.text
    assert (await api.get("/api/v1/orders")).json()["orders"] == []


async def test_invalid_field_is_named(api: httpx.AsyncClient) -> None:
    r = await post(api, alert(quantity=-1))
    assert r.json()["errors"][0]["field"] == "quantity"


async def test_oversize_body_is_413(api: httpx.AsyncClient) -> None:
    r = await api.post("/webhook/tradingview", content=json.dumps(alert(note="x" * 70_000)))
    assert r.status_code == 413


async def test_admin_api_needs_the_key(api: httpx.AsyncClient) -> None:
    for method, path in [
        ("GET", "/api/v1/orders"),
        ("GET", "/api/v1/positions"),
        ("GET", "/api/v1/account"),
        ("GET", "/api/v1/risk"),
        ("GET", "/api/v1/alerts"),
        ("POST", "/api/v1/risk/kill-switch"),
        ("POST", "/api/v1/flatten"),
        ("DELETE", "/api/v1/orders/x"),
    ]:
        for headers in ({"X-API-Key": ""}, {"X-API-Key": "wrong"}):
            r = await api.request(method, path, headers=headers)
            assert r.status_code == 401, (method, path)


async def test_kill_switch_halts_then_reducing_allows_exits(api: httpx.AsyncClient) -> None:
    await post(api, alert(ticker="TSLA", quantity=2, alert_id="ks-1"))
    await until_json(api, "/api/v1/positions", lambda b: position(b, "TSLA") == 2)
    assert (await api.post("/api/v1/risk/kill-switch", json={"state": "HALTED"})).json()[
        "state"
    ] == "HALTED"
    denied = (await post(api, alert(ticker="TSLA", alert_id="ks-2"))).json()
    assert denied["status"] == "denied" and denied["check"] == "kill_switch"
    await api.post("/api/v1/risk/kill-switch", json={"state": "REDUCING"})
    assert (await post(api, alert(ticker="TSLA", alert_id="ks-3"))).json()["status"] == "denied"
    assert (await post(api, alert(ticker="TSLA", action="exit", alert_id="ks-4"))).json()[
        "status"
    ] == "accepted"
    await until_json(api, "/api/v1/positions", lambda b: position(b, "TSLA") == 0)
    risk = (await api.get("/api/v1/risk")).json()
    assert risk["kill_switch"]["state"] == "REDUCING"
    alerts = (await api.get("/api/v1/alerts")).json()["alerts"]
    assert [a["alert_id"] for a in alerts[:3]] == ["ks-4", "ks-3", "ks-2"]


async def test_flatten_all_and_cancel_a_resting_order(api: httpx.AsyncClient) -> None:
    await post(api, alert(ticker="AAPL", quantity=2, alert_id="fl-1"))
    await post(api, alert(ticker="SPY", action="sell", quantity=2, alert_id="fl-2"))
    await until_json(api, "/api/v1/positions", lambda b: len(b["positions"]) == 2)
    result = (await api.post("/api/v1/flatten", json={})).json()
    assert len(result["orders"]) == 2
    await until_json(api, "/api/v1/positions", lambda b: b["positions"] == [])
    # a buy limit far under the market rests until canceled
    r = await post(
        api, alert(ticker="AAPL", order_type="limit", price=1.0, quantity=1, alert_id="lim-1")
    )
    order_id = r.json()["order_id"]
    await until_json(api, f"/api/v1/orders/{order_id}", lambda o: o["status"] == "submitted")
    canceled = (await api.delete(f"/api/v1/orders/{order_id}")).json()
    await until_json(api, f"/api/v1/orders/{order_id}", lambda o: o["status"] == "canceled")
    assert canceled["id"] == order_id
    assert (await api.delete(f"/api/v1/orders/{order_id}")).status_code == 409
    assert (await api.delete("/api/v1/orders/nope")).status_code == 404


async def test_state_survives_a_restart(
    redis_srv: RedisServer, redis: Redis, risk_file: Path
) -> None:
    settings = make_settings(redis_srv.url, risk_file)
    async with (
        serve(create_app(settings)) as url,
        httpx.AsyncClient(base_url=url, headers={"X-API-Key": ADMIN}) as c,
    ):
        await post(c, alert(quantity=4, alert_id="restart-1"))
        await until_json(c, "/api/v1/positions", lambda b: position(b, "AAPL") == 4)
        await c.post("/api/v1/risk/kill-switch", json={"state": "REDUCING"})
    async with (
        serve(create_app(settings)) as url,
        httpx.AsyncClient(base_url=url, headers={"X-API-Key": ADMIN}) as c,
    ):
        assert position((await c.get("/api/v1/positions")).json(), "AAPL") == 4
        assert (await c.get("/api/v1/risk")).json()["kill_switch"]["state"] == "REDUCING"
        again = (await post(c, alert(quantity=4, alert_id="restart-1"))).json()
        assert again["duplicate"] is True
        fills = await redis.xlen("traderops:stream:fills")
        assert fills == 1


async def test_redis_down_means_503_retry_later(risk_file: Path) -> None:
    srv_dir = Path(risk_file).parent / "redis-down"
    server = RedisServer(srv_dir)
    server.start()
    app = create_app(make_settings(server.url, risk_file))
    try:
        async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=20) as c:
            server.stop()
            r = await post(c, alert(alert_id="down-1"))
            assert r.status_code == 503 and "retry later" in r.json()["error"]
            assert "nothing is placed twice" in r.json()["error"]
    finally:
        server.stop()


async def test_source_allow_list_with_trusted_proxy(
    redis_srv: RedisServer, redis: Redis, risk_file: Path
) -> None:
    settings = make_settings(
        redis_srv.url, risk_file, webhook_allow_ips=["tradingview"], trusted_proxies=["127.0.0.1"]
    )
    async with serve(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as c:
        direct = await post(c, alert(alert_id="ip-1"))
        assert direct.status_code == 403
        spoofed = await post(
            c, alert(alert_id="ip-2"), headers={"X-Forwarded-For": "52.89.214.238, 10.0.0.9"}
        )
        assert spoofed.status_code == 403  # the proxy saw 10.0.0.9, not TradingView
        via_proxy = await post(
            c, alert(alert_id="ip-3"), headers={"X-Forwarded-For": "52.89.214.238"}
        )
        assert via_proxy.status_code == 202
    settings = make_settings(redis_srv.url, risk_file, webhook_allow_ips=["tradingview"])
    async with serve(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as c:
        untrusted = await post(
            c, alert(alert_id="ip-4"), headers={"X-Forwarded-For": "52.89.214.238"}
        )
        assert untrusted.status_code == 403  # X-Forwarded-For from an untrusted peer is ignored


_ = free_port


async def test_analytics_and_calendar_from_our_fills(api: httpx.AsyncClient) -> None:
    await post(api, alert(quantity=5, alert_id="an-1"))
    await until_json(api, "/api/v1/positions", lambda b: position(b, "AAPL") == 5)
    await post(api, alert(action="exit", alert_id="an-2", quantity=None))
    await until_json(api, "/api/v1/positions", lambda b: position(b, "AAPL") == 0)
    account = (await api.get("/api/v1/account")).json()
    body = (await api.get("/api/v1/analytics")).json()
    assert body["fills"] == 2
    total = body["total"]
    assert json.dumps(total)  # JSON-clean (no NaN)
    pnl = next(v for k, v in total.items() if "pnl" in k.lower() and isinstance(v, int | float))
    assert pnl == pytest.approx(account["realized_pnl_today"], abs=0.02)
    cal = (await api.get("/api/v1/analytics/calendar", params={"months": 1})).json()
    assert any(day.get("trades", day.get("fills", 0)) for day in cal["days"])
    assert (await api.get("/api/v1/analytics/calendar", params={"months": 99})).status_code == 422


async def test_a_flooding_source_gets_429_with_retry_after(
    redis_srv: RedisServer, redis: Redis, risk_file: Path
) -> None:
    settings = make_settings(
        redis_srv.url, risk_file, webhook_rate_per_source=1, webhook_burst_per_source=3
    )
    async with serve(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as c:
        codes = [
            (await post(c, alert(alert_id=f"flood-{i}", quantity=1))).status_code for i in range(5)
        ]
        assert codes[:3] == [202, 202, 202] and codes[3:] == [429, 429]
        limited = await post(c, alert(alert_id="flood-9"))
        assert int(limited.headers["Retry-After"]) >= 1


async def test_fills_show_as_udf_marks(api: httpx.AsyncClient) -> None:
    await post(api, alert(quantity=3, alert_id="mark-1"))
    await until_json(api, "/api/v1/positions", lambda b: position(b, "AAPL") == 3)
    import time as _time

    now = int(_time.time())
    marks = (
        await api.get(
            "/udf/marks",
            params={"symbol": "AAPL", "from": now - 60, "to": now + 60, "resolution": "1"},
        )
    ).json()
    assert len(marks["id"]) == 1 and marks["label"] == ["B"] and marks["color"] == ["green"]
    assert "buy 3 @" in marks["text"][0]
    other = (
        await api.get(
            "/udf/marks",
            params={"symbol": "MSFT", "from": now - 60, "to": now + 60, "resolution": "1"},
        )
    ).json()
    assert other["id"] == []


async def test_a_write_with_an_unknown_outcome_is_queued_and_decided_once(
    api: httpx.AsyncClient,
) -> None:
    """Redis executed the alert's write but the reply and the read-back both failed: the
    engine cannot say whether it was placed. The alert is taken in durably, so the answer
    is a 202 (the stored decision, which Redis published, or queued; never "nothing was
    placed"); the engine holds the order unsent and retries from the account's stream
    once Redis answers, finds the stored decision, and places one order."""
    engine = await until_engine(api)
    real_save, real_read = engine.store.save_alert, engine.store.decision_is
    failing = [True]

    async def reply_lost(*args: Any, **kw: Any) -> bool:
        await real_save(*args, **kw)
        if failing[0]:
            raise RedisConnectionError("connection lost after the write (simulated)")
        return True

    async def read(*args: Any, **kw: Any) -> bool:
        if failing[0]:
            raise RedisConnectionError("still down (simulated)")
        return bool(await real_read(*args, **kw))

    engine.store.save_alert, engine.store.decision_is = reply_lost, read
    first = await post(api, alert(quantity=2, alert_id="unknown-1"))
    assert first.status_code == 202 and first.json()["status"] in ("queued", "accepted"), first.text
    assert "nothing was placed" not in first.text
    failing[0] = False
    decided = await until_json(
        api, "/api/v1/alerts/unknown-1", lambda b: b["decisions"][0]["status"] != "queued"
    )
    assert decided["decisions"][0]["status"] == "accepted", decided
    again = await post(api, alert(quantity=2, alert_id="unknown-1"))
    assert again.status_code == 202 and again.json()["duplicate"] is True, again.text
    assert again.json()["order_id"] == decided["decisions"][0]["order_id"]
    await until_json(api, "/api/v1/positions", lambda b: position(b, "AAPL") == 2)
    orders = (await api.get("/api/v1/orders")).json()["orders"]
    assert [
        o["request"]["quantity"] for o in orders if o["request"]["alert_id"] == "unknown-1"
    ] == [2]


def _signed(body: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body).encode()
    return raw, {"X-Signature": hmac.new(HMAC_KEY.encode(), raw, hashlib.sha256).hexdigest()}


@pytest.mark.parametrize(
    ("when", "fragment"),
    [
        ("2020-01-01T00:00:00Z", "stale alert"),
        (int(time.time()) - 8 * 86_400, "stale alert"),  # past the 7-day idempotency window
        ("9999-12-31T00:00:00Z", "in the future"),
    ],
)
async def test_stale_and_future_alerts_are_refused(
    api: httpx.AsyncClient, when: Any, fragment: str
) -> None:
    r = await post(api, alert(alert_id=f"stale-{when}", time=when))
    assert r.status_code == 422 and fragment in r.json()["error"], r.text
    raw, headers = _signed(
        {"ticker": "SPY", "action": "buy", "alert_id": f"s-{when}", "time": when}
    )
    r = await api.post("/webhook/tradingview", content=raw, headers=headers)
    assert r.status_code == 422 and fragment in r.json()["error"], r.text
    assert (await api.get("/api/v1/orders")).json()["orders"] == []


async def test_a_signed_alert_must_carry_its_time(api: httpx.AsyncClient) -> None:
    raw, headers = _signed({"ticker": "SPY", "action": "buy", "alert_id": "signed-no-time"})
    r = await api.post("/webhook/tradingview", content=raw, headers=headers)
    assert r.status_code == 422 and '"time"' in r.json()["error"]


async def test_the_scheduler_passes_the_allow_list_with_a_signature(
    redis_srv: RedisServer, redis: Redis, risk_file: Path
) -> None:
    """TRADEROPS_WEBHOOK_ALLOW_IPS=tradingview (the README's advice): kairos, signing from
    127.0.0.1, still gets through; an unsigned alert from there does not; a bad
    signature from there is 401."""
    app = create_app(make_settings(redis_srv.url, risk_file, webhook_allow_ips="tradingview"))
    async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as c:
        raw, headers = _signed(
            {"ticker": "SPY", "action": "buy", "alert_id": "kairos-x", "time": int(time.time())}
        )
        r = await c.post("/webhook/tradingview", content=raw, headers=headers)
        assert r.status_code == 202, r.text
        assert (await post(c, alert(alert_id="unsigned-local"))).status_code == 403
        bad = await c.post("/webhook/tradingview", content=raw, headers={"X-Signature": "0" * 64})
        assert bad.status_code == 401


async def test_an_alert_the_engine_fails_on_is_retried_then_denied_and_the_account_goes_on(
    api: httpx.AsyncClient,
) -> None:
    """A bug in deciding one alert (here: the planner raises for MSFT) never stops the
    account: the alert is retried a few times, then stored as denied (check ``engine``),
    and the alerts behind it are decided."""
    engine = await until_engine(api)
    real = engine.decider.requests_for

    def planner(alert: Any, *args: Any) -> Any:
        if alert.ticker == "MSFT":
            raise RuntimeError("planner bug (simulated)")
        return real(alert, *args)

    engine.decider.requests_for = planner
    r = await post(api, alert(ticker="MSFT", alert_id="poison-1"))
    assert r.status_code == 202 and r.json()["status"] == "queued", r.text
    r2 = await post(api, alert(ticker="AAPL", alert_id="after-poison"))
    assert r2.status_code == 202, r2.text
    denied = await until_json(
        api,
        "/api/v1/alerts/poison-1",
        lambda b: b["decisions"][0]["status"] != "queued",
        timeout=15,
    )
    assert denied["decisions"][0]["check"] == "engine", denied
    assert denied["decisions"][0]["reason"] == "internal_error"
    after = await until_json(
        api,
        "/api/v1/alerts/after-poison",
        lambda b: b["decisions"][0]["status"] != "queued",
        timeout=15,
    )
    assert after["decisions"][0]["status"] == "accepted", after
