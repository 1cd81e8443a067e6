"""The options API over real HTTP: a datahub with a fake chain feed and a real Redis.

No engine runs (``execution_in_datahub=False``): the book and the spread's order are
stored the way an engine stores them (tests/fakes/option_chains.py), and the API reads
them as it reads any account's.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from app.datahub.app import create_app
from tests.apps import serve, settings_for
from tests.fakes.option_chains import (
    CALL_500,
    CALL_505,
    GREEKS_AGE,
    PUT_495,
    STRIKES,
    ChainFeed,
    listed,
    seed_options_book,
)
from tests.servers import RedisServer

ADMIN = "options-admin-key"
SYMBOLS = ["AAPL", "SPY"]


@dataclass
class Hub:
    http: httpx.AsyncClient
    feed: ChainFeed
    redis: Redis

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return await self.http.get(path, params=params)


@pytest.fixture
async def hub(redis_srv: RedisServer, redis: Redis) -> AsyncIterator[Hub]:
    feed = ChainFeed(SYMBOLS)
    settings = settings_for(
        redis_srv.url, symbols=SYMBOLS, admin_api_key=ADMIN, execution_in_datahub=False
    )
    async with (
        serve(create_app(settings, feed=feed)) as url,
        httpx.AsyncClient(base_url=url, timeout=10, headers={"X-API-Key": ADMIN}) as http,
    ):
        yield Hub(http, feed, redis)


async def test_expirations(hub: Hub) -> None:
    r = await hub.get("/api/v1/options/expirations", symbol="spy")
    assert r.status_code == 200, r.text
    assert r.json() == {"symbol": "SPY", "expirations": [d.isoformat() for d in listed()]}


async def test_chain_of_the_soonest_expiration_by_default(hub: Hub) -> None:
    before = time.time()
    r = await hub.get("/api/v1/options/chain", symbol="SPY")
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {
        "underlying",
        "expiration",
        "underlying_price",
        "atm_strike",
        "fetched_at",
        "greeks_time",
        "greeks_age",
        "contracts",
    }
    assert body["underlying"] == "SPY" and body["expiration"] == listed()[0].isoformat()
    assert body["underlying_price"] == 500.0 and body["atm_strike"] == 500.0
    assert before - 1 <= body["fetched_at"] <= time.time()
    assert body["greeks_time"] == pytest.approx(body["fetched_at"] - GREEKS_AGE)
    assert GREEKS_AGE - 1 <= body["greeks_age"] <= GREEKS_AGE + 10
    contracts = body["contracts"]
    strikes = [float(k) for k in STRIKES]
    # calls then puts, each by strike
    assert [(c["right"], c["strike"]) for c in contracts] == [
        *(("call", k) for k in strikes),
        *(("put", k) for k in strikes),
    ]
    atm_call = contracts[2]
    assert set(atm_call) == {
        "symbol",
        "right",
        "strike",
        "bid",
        "ask",
        "mid",
        "last",
        "volume",
        "open_interest",
        "delta",
        "gamma",
        "theta",
        "vega",
        "iv",
    }
    assert atm_call["symbol"].startswith("SPY") and atm_call["symbol"][-9:] == "C00500000"
    assert atm_call["mid"] == pytest.approx((atm_call["bid"] + atm_call["ask"]) / 2)
    assert atm_call["delta"] == 0.5 and atm_call["volume"] == 1000
    assert atm_call["open_interest"] == 5000 and atm_call["iv"] == pytest.approx(0.2)


async def test_chain_of_a_listed_expiration_and_the_cache(hub: Hub) -> None:
    wanted = listed()[2]
    for _ in range(3):
        r = await hub.get("/api/v1/options/chain", symbol="SPY", expiration=wanted.isoformat())
        assert r.status_code == 200, r.text
        assert r.json()["expiration"] == wanted.isoformat()
    # one process cache: the feed was asked once for the list and once for the chain
    assert hub.feed.calls == [("expirations", "SPY"), ("chain", "SPY")]


@pytest.mark.parametrize(
    ("path", "params", "status", "fragment"),
    [
        ("expirations", {}, 422, "symbol"),
        ("chain", {}, 422, "symbol"),
        ("expirations", {"symbol": "B@D!"}, 422, "invalid symbol 'B@D!'"),
        ("chain", {"symbol": "SPY261218C00600000"}, 422, "give its underlying"),
        ("chain", {"symbol": "SPY", "expiration": "next friday"}, 422, "expiration"),
        ("expirations", {"symbol": "AAPL"}, 404, "no options listed for AAPL"),
        ("chain", {"symbol": "AAPL"}, 404, "no options listed for AAPL"),
    ],
)
async def test_bad_requests_are_clear(
    hub: Hub, path: str, params: dict[str, str], status: int, fragment: str
) -> None:
    r = await hub.get(f"/api/v1/options/{path}", **params)
    assert r.status_code == status, r.text
    assert fragment in r.text


async def test_an_expiration_not_listed_names_the_nearest(hub: Hub) -> None:
    soon, week, month = listed()
    r = await hub.get(
        "/api/v1/options/chain", symbol="SPY", expiration=(week + timedelta(days=1)).isoformat()
    )
    assert r.status_code == 404
    detail = r.json()["detail"]
    assert detail == (
        f"no SPY options expire {(week + timedelta(days=1)).isoformat()}; "
        f"nearest listed: {soon.isoformat()}, {week.isoformat()}, {month.isoformat()}"
    )
    assert ("chain", "SPY") not in hub.feed.calls  # answered from the list, no chain asked


async def test_feed_down_is_503(hub: Hub) -> None:
    hub.feed.down = True
    for path in ("expirations", "chain"):
        r = await hub.get(f"/api/v1/options/{path}", symbol="SPY")
        assert r.status_code == 503, r.text
        assert r.json()["detail"] == "feed unavailable: upstream timed out (test)"
        assert r.headers["retry-after"] == "5"
    # the list cached, a chain not yet fetched: its fetch failing is a 503 too
    hub.feed.down = False
    assert (await hub.get("/api/v1/options/expirations", symbol="SPY")).status_code == 200
    hub.feed.down = True
    r = await hub.get("/api/v1/options/chain", symbol="SPY")
    assert r.status_code == 503


async def test_the_admin_key_is_required(hub: Hub) -> None:
    paths = [
        "/api/v1/options/expirations?symbol=SPY",
        "/api/v1/options/chain?symbol=SPY",
        "/api/v1/options/positions",
    ]
    async with httpx.AsyncClient(base_url=hub.http.base_url, timeout=10) as anonymous:
        for path in paths:
            for headers in ({}, {"X-API-Key": "wrong"}):
                r = await anonymous.get(path, headers=headers)
                assert r.status_code == 401, (path, headers, r.text)
    assert hub.feed.calls == []


async def test_openapi_documents_the_shapes(hub: Hub) -> None:
    doc = (await hub.http.get("/openapi.json")).json()
    chain = doc["paths"]["/api/v1/options/chain"]["get"]
    assert chain["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Chain"
    }
    assert {"404", "422", "503"} <= set(chain["responses"])
    schemas = doc["components"]["schemas"]
    assert "iv" in schemas["Contract"]["properties"]
    assert "legs" in schemas["SpreadGroup"]["properties"]
    assert "net_cost" in schemas["SpreadGroup"]["properties"]
    assert "/api/v1/options/positions" in doc["paths"]


async def test_positions_grouped_as_spreads(hub: Hub) -> None:
    r = await hub.get("/api/v1/options/positions")
    assert r.status_code == 503 and "no book yet" in r.json()["detail"]
    await seed_options_book(hub.redis)

    # no chain seen yet: marked at the book's last, greeks unknown
    body = (await hub.get("/api/v1/options/positions")).json()
    assert body["account"] == "default"
    assert [(g["strategy"], g["underlying"], g["kind"]) for g in body["groups"]] == [
        ("hedge", "SPY", "long put"),
        ("vertical", "SPY", "call vertical"),
    ]
    hedge, vertical = body["groups"]
    assert [leg["symbol"] for leg in vertical["legs"]] == [CALL_500, CALL_505]  # no AAPL
    assert vertical["net_cost"] == 80.0  # 2 x (3.00 - 2.60) x 100
    assert vertical["unrealized_pnl"] == 0.0
    assert vertical["delta"] is None and vertical["legs"][0]["delta"] is None
    long_leg = vertical["legs"][0]
    assert long_leg | {"expiration": None} == {
        "symbol": CALL_500,
        "right": "call",
        "strike": 500.0,
        "expiration": None,
        "quantity": 2,
        "avg_price": 3.0,
        "multiplier": 100.0,
        "last": 3.0,
        "mark": 3.0,
        "cost": 600.0,
        "unrealized_pnl": 0.0,
        "delta": None,
        "gamma": None,
        "theta": None,
        "vega": None,
        "iv": None,
        "greeks_time": None,
    }
    assert date.fromisoformat(long_leg["expiration"]) == listed()[1]

    # once the chain of their expiration has been fetched: marked at mid, greeks summed
    week = listed()[1].isoformat()
    assert (await hub.get("/api/v1/options/chain", symbol="SPY", expiration=week)).is_success
    hedge, vertical = (await hub.get("/api/v1/options/positions")).json()["groups"]
    assert [leg["mark"] for leg in vertical["legs"]] == [3.45, 2.95]
    assert vertical["unrealized_pnl"] == 20.0  # (3.45-3.00) x 200 + (2.95-2.60) x -200
    assert vertical["delta"] == 50.0  # 0.5 x 100 x 2 - 0.25 x 100 x 2
    assert vertical["gamma"] == 0.0 and vertical["theta"] == 0.0
    assert vertical["greeks_time"] is not None
    assert hedge["delta"] == -25.0 and hedge["net_cost"] == 310.0
    assert hedge["unrealized_pnl"] == -15.0  # (2.95 - 3.10) x 100
    assert hedge["theta"] == -15.0 and hedge["vega"] == 30.0

    # the account's positions carry the option's multiplier (100), as the engine's book does
    positions = (await hub.get("/api/v1/positions")).json()["positions"]
    assert {p["symbol"]: p["multiplier"] for p in positions} == {
        "AAPL": 1.0,
        CALL_500: 100.0,
        CALL_505: 100.0,
        PUT_495: 100.0,
    }
    account = (await hub.get("/api/v1/account")).json()
    # cash paid 600 - 520 + 310 for the options and 1500 for the shares, marks at cost
    assert account["cash"] == 100_000 - 390 - 1500
    assert account["equity"] == pytest.approx(100_000)


async def test_positions_of_an_unknown_account(hub: Hub) -> None:
    r = await hub.get("/api/v1/options/positions", account="nope")
    assert r.status_code == 404 and "no account 'nope'" in r.json()["detail"]
