"""hypothesis over HTTP: the webhook and the market-data query parameters.

The datahub runs in-process on the session's real Redis; hypothesis drives it from a
worker thread with a blocking client while the event loop keeps serving.

* ``POST /webhook/tradingview`` with arbitrary bytes, text and JSON (near-valid alerts
  included, signed or not): never a 5xx, and an order only for a valid alert that
  carried the right passphrase or signature -- checked against Redis after every call;
* UDF and REST market-data endpoints with arbitrary query strings: never a 5xx;
* admin bodies (flatten, kill switch): never a 5xx.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis as redis_sync
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from app.bus import Keys
from app.config import Settings
from app.datahub.app import create_app
from app.datahub.intake_guards import freshness_problem
from app.models.alerts import Alert
from tests.apps import serve
from tests.fuzz.common import ADMIN, HMAC_KEY, PASS, SYMBOLS, fuzz_settings
from tests.servers import RedisServer

pytestmark = pytest.mark.timeout(300)

SETTINGS = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
async def hub(
    redis_srv: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    tmp = Path(tmp_path_factory.mktemp("fuzz-http"))
    async with serve(create_app(fuzz_settings(redis_srv.url, tmp))) as url:
        async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": ADMIN}) as c:
            for _ in range(200):  # the engine loads its state once Redis answers
                if (await c.get("/api/v1/account")).status_code == 200:
                    break
                await asyncio.sleep(0.05)
        yield url


async def in_thread(fn: Callable[[], None]) -> None:
    """Run a blocking hypothesis test while this loop keeps serving the app."""
    await asyncio.to_thread(fn)


# -- the webhook ------------------------------------------------------------------------
def sign(raw: bytes) -> str:
    return hmac.new(HMAC_KEY.encode(), raw, hashlib.sha256).hexdigest()


numbers = (
    st.integers(-(2**64), 2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([0, 1, 10, 1.5, 1e6, 1e300, -1, "10", "1e400", "NaN", None, True])
)
fields = {
    "passphrase": st.sampled_from([PASS, PASS + " ", "", "wrong", None, 1, [PASS], PASS.upper()]),
    "ticker": st.sampled_from([*SYMBOLS, "aapl", "NASDAQ:AAPL", "NOPE", "AA;PL", "", "\x00", 1])
    | st.text(max_size=12),
    "action": st.sampled_from(["buy", "sell", "exit", "flatten", "BUY", " hold ", "", None, 1])
    | st.text(max_size=8),
    "quantity": numbers,
    "order_type": st.sampled_from(["market", "limit", "stop", "stop_limit", "LIMIT", "iceberg"]),
    "price": numbers,
    "stop_loss": numbers,
    "take_profit": numbers,
    "strategy": st.sampled_from(["default", "s1", "bad strategy", "", "x" * 65]),
    "alert_id": st.uuids().map(str) | st.text(min_size=0, max_size=140),
    "time": st.sampled_from(["2026-11-20T15:30:00Z", "yesterday", 0, -1, 1e12, "9999-12-31"]),
}
alert_dicts = st.fixed_dictionaries(
    {}, optional={**fields, "note": st.text(max_size=30), "": numbers}
)
VALID = {"passphrase": PASS, "ticker": "AAPL", "action": "buy", "quantity": 1}
near_valid = st.builds(  # a valid alert with up to three fields changed or added
    lambda patch, drop, uid: ({**VALID, "alert_id": uid, **patch}, drop),
    st.fixed_dictionaries({}, optional=fields).filter(lambda d: len(d) <= 3),
    st.sampled_from([None, "passphrase", "ticker", "action"]),
    st.uuids().map(str),
).map(lambda pd: {k: v for k, v in pd[0].items() if k != pd[1]})
bodies = (
    near_valid.map(lambda d: ("json", d))
    | near_valid.map(lambda d: ("json", d))
    | alert_dicts.map(lambda d: ("json", d))
    | st.binary(max_size=300).map(lambda b: ("raw", b))
    | st.text(max_size=200).map(lambda t: ("raw", t.encode("utf-8", "surrogatepass")))
    | st.recursive(
        st.none() | st.booleans() | numbers | st.text(max_size=10),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
        max_leaves=10,
    ).map(lambda v: ("json", v))
)
signing = st.sampled_from(["none", "good", "bad", "garbage"])


def expected_auth(kind: str, payload: Any, sig: str) -> bool:
    if sig == "good":
        return True
    if sig in ("bad", "garbage"):
        return False
    return kind == "json" and isinstance(payload, dict) and payload.get("passphrase") == PASS


def valid_alert(kind: str, payload: Any, sig: str = "none") -> bool:
    if kind != "json" or not isinstance(payload, dict):
        return False
    try:
        alert = Alert.model_validate(payload)
    except ValidationError:
        return False
    # the freshness rules: a recent time (or none, unless signed), never far in the future
    if freshness_problem(alert.time, sig == "good", Settings(_env_file=None)) is not None:
        return False
    return alert.ticker in SYMBOLS


async def test_webhook_never_5xx_and_never_an_unauthorised_or_invalid_order(
    hub: str, redis_srv: RedisServer
) -> None:
    store = redis_sync.Redis.from_url(redis_srv.url)
    client = httpx.Client(base_url=hub, timeout=10)
    seen: dict[str, int] = {}

    @SETTINGS
    @given(bodies, signing)
    @example(
        ("json", {"passphrase": PASS, "ticker": "AAPL", "action": "buy", "quantity": 1}), "bad"
    )
    @example(("json", {"passphrase": "wrong", "ticker": "AAPL", "action": "buy"}), "none")
    @example(("json", {"ticker": "AAPL", "action": "buy", "quantity": 1}), "good")
    @example(("raw", b'{"passphrase": "' + PASS.encode() + b'", "ticker": "AAPL"'), "none")
    @example(("raw", b"\xff\xfe\x00"), "garbage")
    def run(body: tuple[str, Any], sig: str) -> None:
        kind, payload = body
        raw = json.dumps(payload).encode() if kind == "json" else payload
        headers: dict[str, str | bytes] = {}
        if sig == "good":
            headers["X-Signature"] = sign(raw)
        elif sig == "bad":
            headers["X-Signature"] = "0" * 64
        elif sig == "garbage":
            headers["X-Signature"] = b"sha256=\xe9\xe8"  # latin-1 bytes, not hex
        # no alert of an earlier example still in flight (taken in, not yet decided)
        acct = Keys.account("default")
        for _ in range(400):
            if (
                not store.exists(acct.alerts_in)
                or not store.xpending(acct.alerts_in, Keys.EXECUTION_GROUP)["pending"]
            ) and (store.xlen(acct.alerts_in) == 0 or _all_read(store, acct.alerts_in)):
                break
            time.sleep(0.025)
        before = store.zcard(Keys.account("default").recent_orders)
        r = client.post(
            "/webhook/tradingview",
            content=raw,
            headers=headers,
        )
        seen[str(r.status_code)] = seen.get(str(r.status_code), 0) + 1
        if r.status_code == 202 and r.json().get("status") == "queued":
            # taken in, decided in the background: let it land before the next example
            key = Keys.account("default").alert(r.json()["alert_id"])
            for _ in range(400):
                raw = store.get(key)
                if raw is not None and not raw.startswith(b"pending"):
                    break
                time.sleep(0.025)
        assert r.status_code < 500, (r.status_code, r.text, body, sig)
        after = store.zcard(Keys.account("default").recent_orders)
        if after > before:
            newest = [
                store.get(Keys.order(i.decode()))
                for i in store.zrange(Keys.account("default").recent_orders, before, -1)
            ]
            assert r.status_code == 202, (r.status_code, r.text, body, sig, newest)
        if r.status_code in (200, 202):
            assert expected_auth(kind, payload, sig), (r.text, body, sig)
            assert valid_alert(kind, payload, sig), (r.text, body, sig)
        if not expected_auth(kind, payload, sig):
            assert r.status_code in (401, 413, 422, 429), (r.status_code, r.text, body, sig)
            assert after == before
        assert PASS not in r.text and HMAC_KEY not in r.text

    try:
        await in_thread(run)
    finally:
        client.close()
        store.close()
        print("\nFUZZ webhook statuses:", dict(sorted(seen.items())))


def _all_read(store: Any, stream: str) -> bool:
    """Every entry of the stream delivered to the engine's consumer group."""
    groups = store.xinfo_groups(stream)
    last = store.xinfo_stream(stream)["last-generated-id"]
    return any(g["last-delivered-id"] == last for g in groups)


# -- market data query parameters ---------------------------------------------------------
param_text = st.text(max_size=24) | st.sampled_from(
    [
        "",
        "0",
        "-1",
        "1e400",
        "inf",
        "-inf",
        "nan",
        "Infinity",
        "9" * 30,
        "1.5",
        "0x10",
        "1_000",
        "\x00",
        "AAPL",
        "NASDAQ:AAPL",
        "aapl,msft",
        ",,,",
        "1D",
        "D",
        "1",
        "W",
        "M",
        "240",
        str(2**63),
    ]
)
ENDPOINTS: dict[str, list[str]] = {
    "/udf/history": ["symbol", "resolution", "from", "to", "countback"],
    "/udf/marks": ["symbol", "resolution", "from", "to"],
    "/udf/symbols": ["symbol"],
    "/udf/search": ["query", "type", "exchange", "limit"],
    "/udf/quotes": ["symbols"],
    "/api/v1/history": ["symbol", "resolution", "from", "to", "countback"],
    "/api/v1/quotes": ["symbols"],
}
queries = st.sampled_from(sorted(ENDPOINTS)).flatmap(
    lambda path: st.tuples(
        st.just(path),
        st.fixed_dictionaries({}, optional={name: param_text for name in ENDPOINTS[path]}),
    )
)


async def test_market_data_params_never_5xx(hub: str) -> None:
    client = httpx.Client(base_url=hub, timeout=15)
    seen: dict[str, int] = {}

    @SETTINGS
    @given(queries)
    @example(("/udf/history", {"symbol": "AAPL", "resolution": "1D", "from": "inf", "to": "1"}))
    @example(
        ("/udf/history", {"symbol": "AAPL", "resolution": "1D", "to": "1e400", "countback": "5"})
    )
    @example(("/udf/marks", {"symbol": "AAPL", "from": "-inf", "to": "1"}))
    @example(
        (
            "/udf/history",
            {"symbol": "AAPL", "resolution": "1", "to": str(10**15), "countback": "10"},
        )
    )
    @example(("/api/v1/history", {"symbol": "AAPL", "to": str(2**63), "countback": "10"}))
    def run(query: tuple[str, dict[str, str]]) -> None:
        path, params = query
        r = client.get(path, params=params)
        seen[f"{path} {r.status_code}"] = seen.get(f"{path} {r.status_code}", 0) + 1
        assert r.status_code < 500 or (r.status_code == 503 and "feed" in r.text), (
            path,
            params,
            r.status_code,
            r.text[:300],
        )

    try:
        await in_thread(run)
    finally:
        client.close()
        print("\nFUZZ market data statuses:", dict(sorted(seen.items())))


# -- admin bodies -------------------------------------------------------------------------
admin_json = st.recursive(
    st.none() | st.booleans() | numbers | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=8,
)
admin_bodies = st.sampled_from(["/api/v1/flatten", "/api/v1/risk/kill-switch"]).flatmap(
    lambda path: st.tuples(
        st.just(path),
        st.fixed_dictionaries(
            {},
            optional={
                "symbol": st.sampled_from(["AAPL", "aapl", "NOPE", "AA;PL", "", "\x00", 5])
                | st.text(max_size=10),
                "state": st.sampled_from(["ACTIVE", "REDUCING", "halted", "OFF", 1]),
                "flatten": st.sampled_from([False, "yes", None]),
                "reason": st.text(max_size=10),
            },
        )
        | admin_json,
    )
)


async def test_admin_bodies_never_5xx(hub: str) -> None:
    client = httpx.Client(base_url=hub, timeout=15, headers={"X-API-Key": ADMIN})

    @SETTINGS
    @given(admin_bodies)
    @example(("/api/v1/flatten", {"symbol": "AA;PL"}))
    @example(("/api/v1/flatten", {"symbol": " "}))
    def run(call: tuple[str, Any]) -> None:
        path, body = call
        if (
            path.endswith("kill-switch")
            and isinstance(body, dict)
            and body.get("state") != "ACTIVE"
        ):
            body = {**body, "state": "ACTIVE"} if "state" in body else body
        r = client.post(
            path, content=json.dumps(body), headers={"Content-Type": "application/json"}
        )
        assert r.status_code < 500, (path, body, r.status_code, r.text[:300])

    def reset() -> None:
        client.post("/api/v1/risk/kill-switch", json={"state": "ACTIVE"})

    try:
        await in_thread(run)
    finally:
        await in_thread(reset)
        client.close()
