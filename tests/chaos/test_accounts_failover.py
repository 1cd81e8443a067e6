"""Three intake datahubs, two execution processes, two accounts on one Redis; the lease
holder is killed with SIGKILL mid-run and nothing is restarted by hand.

Afterwards: every datahub reports, for each account, the positions that account's
fills add up to; every acknowledged alert has exactly one order per routed account
(accepted) or a stored decision (denied); no alert has two orders in an account.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from app.bus import Keys
from app.execution.planner import order_id
from tests.chaos.common import (
    ADMIN,
    PASS,
    SYMBOLS,
    Datahub,
    all_orders,
    decision,
    fill_entries,
    open_loop_alerts,
    wait_http,
)
from tests.servers import RedisServer

pytestmark = pytest.mark.timeout(240)

ACCOUNTS = """
accounts:
  - {id: alpha, broker: paper, starting_cash: 5000000}
  - {id: beta, broker: paper, starting_cash: 5000000}
routes:
  - strategy: solo
    accounts: [{account: alpha}]
  - strategy: "*"
    accounts: [{account: alpha}, {account: beta, multiplier: 2}]
"""
COUNT = 240
RATE = 60.0  # alerts per second, round-robin over the datahubs
KILL_AFTER = 1.5  # seconds into the load
LEASE = 2.0


def routed(i: int) -> list[str]:
    return ["alpha"] if i % 3 == 0 else ["alpha", "beta"]


def body(i: int, tag: str = "fo") -> dict[str, Any]:
    """Buys and sells of 1-3 shares (x2 in beta); every 7th asks for 100 (beta: 200) and
    is denied by the quantity check (max 50)."""
    return {
        "passphrase": PASS,
        "ticker": SYMBOLS[i % 5],
        "action": "sell" if i % 4 == 1 else "buy",
        "quantity": 100 if i % 7 == 3 else 1 + i % 3,
        "strategy": "solo" if i % 3 == 0 else "mirror",
        "alert_id": f"{tag}-{i:05d}",
    }


@pytest.fixture
def stack(redis_server: RedisServer, tmp_path: Path) -> Iterator[dict[str, list[Datahub]]]:
    accounts = tmp_path / "accounts.yaml"
    accounts.write_text(ACCOUNTS)
    env = {
        "TRADEROPS_ACCOUNTS": str(accounts),
        "TRADEROPS_ACCOUNT_LEASE_SECONDS": str(LEASE),
        "TRADEROPS_EXECUTION_IN_DATAHUB": "false",
    }
    hubs = []
    for n in range(3):
        (tmp_path / f"hub{n}").mkdir()
        hubs.append(Datahub(redis_server.url, tmp_path / f"hub{n}", env=env, name=f"hub{n}"))
    engines = []
    for n in range(2):
        (tmp_path / f"exec{n}").mkdir()
        engine = Datahub(redis_server.url, tmp_path / f"exec{n}", env=env, name=f"exec{n}")
        engine.command = ("execution", "--metrics-port", str(engine.port))
        engines.append(engine)
    try:
        yield {"hubs": hubs, "engines": engines}
    finally:
        for proc in hubs + engines:
            proc.stop()


@pytest.fixture
async def rclient(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


async def holder_pid(redis: Redis, account: str) -> int | None:
    raw = await redis.get(Keys.account(account).lease)
    return int(raw.decode().split(":")[0].split(".")[-2]) if raw else None


async def wait_held(redis: Redis, accounts: list[str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not all([await redis.exists(Keys.account(a).snapshot) for a in accounts]):
        assert time.monotonic() < deadline, "accounts not held by an engine"
        await asyncio.sleep(0.1)


async def test_many_intake_workers_two_accounts_lease_holder_killed(
    stack: dict[str, list[Datahub]], rclient: Redis
) -> None:
    hubs, engines = stack["hubs"], stack["engines"]
    for proc in hubs + engines:
        proc.start()
    for hub in hubs:
        await wait_http(hub.url, "/health")
    await wait_held(rclient, ["alpha", "beta"])
    by_pid = {e.pid: e for e in engines}

    async def kill_the_holder() -> Datahub:
        await asyncio.sleep(KILL_AFTER)
        victim = by_pid[await holder_pid(rclient, "alpha")]
        assert victim.pid is not None
        os.kill(victim.pid, signal.SIGKILL)
        return victim

    killing = asyncio.create_task(kill_the_holder())
    told = await open_loop_alerts([h.url for h in hubs], "fo", COUNT, RATE, body=body)
    victim = await killing
    survivor = next(e for e in engines if e is not victim)
    victim.proc = None  # dead; nothing restarts it

    acked = [t for t in told if t.status in (200, 202)]
    assert len(acked) >= COUNT * 0.9, Counter(t.status or t.error for t in told)
    # every acknowledged alert is decided in every account it routes to, by the survivor
    deadline = time.monotonic() + 60
    undecided: list[tuple[str, str]] = []
    while time.monotonic() < deadline:
        undecided = []
        for t in acked:
            i = int(t.alert_id.split("-")[1])
            for account in routed(i):
                found = await decision(rclient, t.alert_id, account)
                if not isinstance(found, dict):
                    undecided.append((account, t.alert_id))
        if not undecided:
            break
        await asyncio.sleep(0.5)
    assert not undecided, f"{len(undecided)} undecided, e.g. {undecided[:5]}"
    assert await holder_pid(rclient, "alpha") == survivor.pid
    assert await holder_pid(rclient, "beta") == survivor.pid

    # every order terminal, one per routed account per accepted alert, never two
    orders: dict[str, list[dict[str, Any]]] = {}
    deadline = time.monotonic() + 30
    while True:
        orders = {a: await all_orders(rclient, a) for a in ("alpha", "beta")}
        open_ = [o for os_ in orders.values() for o in os_ if o["status"] not in ("filled",)]
        if not open_ or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.3)
    assert not open_, open_[:3]
    for account, account_orders in orders.items():
        # one alert is one order, or two legs of one reversal (cover, then open); the
        # leg ids are the planner's, so a second placement could not hide as a new id
        per_alert = Counter(o["request"]["alert_id"] for o in account_orders)
        shares: Counter[str] = Counter()
        for o in account_orders:
            alert_id = o["request"]["alert_id"]
            legs = {order_id(account, alert_id, 0), order_id(account, alert_id, 1)}
            assert o["id"] in legs, o
            shares[alert_id] += o["request"]["quantity"]
        for t in acked:
            i = int(t.alert_id.split("-")[1])
            if account not in routed(i):
                assert t.alert_id not in per_alert
                continue
            stored = await decision(rclient, t.alert_id, account)
            assert isinstance(stored, dict)
            if stored["status"] == "accepted":
                assert 1 <= per_alert[t.alert_id] <= 2
                expected = (1 + i % 3) * (1 if account == "alpha" else 2)
                assert stored["quantity"] == expected == shares[t.alert_id]
            else:
                assert t.alert_id not in per_alert
                assert stored["check"] == "quantity", stored

    # every datahub's positions per account = that account's fills
    fills = await fill_entries(rclient)
    assert len({f["id"] for f in fills}) == len(fills)
    filled: Counter[str] = Counter()
    for f in fills:
        filled[f["order_id"]] += f["quantity"]
    for account_orders in orders.values():  # no order filled twice (a second placement)
        for o in account_orders:
            assert filled[o["id"]] == o["request"]["quantity"], o
    for account in ("alpha", "beta"):
        want: dict[str, int] = defaultdict(int)
        for f in fills:
            if f["account"] == account:
                sign = 1 if f["intent"] in ("buy", "buy_to_cover") else -1
                want[f["symbol"]] += sign * f["quantity"]
        want = {s: q for s, q in want.items() if q}
        assert want, f"no fills in {account}"
        async with httpx.AsyncClient(timeout=5, headers={"X-API-Key": ADMIN}) as client:
            for hub in hubs:
                r = await client.get(f"{hub.url}/api/v1/positions", params={"account": account})
                assert r.status_code == 200, r.text
                have = {p["symbol"]: p["quantity"] for p in r.json()["positions"]}
                assert have == want, (hub.name, account, have, want)
    # the acknowledged answers carried one decision per routed account
    for t in acked:
        i = int(t.alert_id.split("-")[1])
        assert [d["account"] for d in t.body["decisions"]] == routed(i), json.dumps(t.body)
