"""Several accounts in one deployment: routing, per-account kill switch, the book of
record, and a Tradier account (the fake server) whose cash is nobody's default."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from app.datahub.app import create_app
from app.execution.store import ExecutionStore
from tests.apps import serve, settings_for
from tests.fakes.tradier_orders import TradierAccount, running_account
from tests.servers import RedisServer
from tests.support.poll import until_json

PASS = "accounts-passphrase"
ADMIN = "accounts-admin-key"
LIVE_ID = "VA000042"
RISK = """
rate_limit: null
duplicate: null
price_collar: null
volatility: null
daily_loss: {max_loss: 5000}
sizing:
  default: {mode: signal, quantity: 1}
"""


@pytest.fixture
async def live(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[TradierAccount]:
    async with running_account(LIVE_ID) as acct:
        # a real account's money: not the 100,000 default of a paper book
        acct.balances = {
            "account_number": LIVE_ID,
            "total_cash": 60_000.0,
            "total_equity": 60_000.0,
            "long_market_value": 0.0,
            "short_market_value": 0.0,
            "cash": {"cash_available": 60_000.0},
        }
        monkeypatch.setenv("TEST_LIVE_TRADIER_TOKEN", acct.fake.token)
        yield acct


def accounts_file(tmp_path: Path, live: TradierAccount) -> Path:
    (tmp_path / "risk.yaml").write_text(RISK)
    path = tmp_path / "accounts.yaml"
    path.write_text(
        f"""
accounts:
  - id: pap
    broker: paper
    starting_cash: 25000
    risk_config: risk.yaml
  - id: live
    broker: tradier
    risk_config: risk.yaml
    tradier:
      token_env: TEST_LIVE_TRADIER_TOKEN
      account_id: {LIVE_ID}
      base_url: {live.fake.base_url}
routes:
  - strategy: mirror
    accounts: [{{account: pap}}, {{account: live}}]
  - strategy: "*"
    accounts: [{{account: pap}}]
"""
    )
    return path


@pytest.fixture
async def api(
    redis_srv: RedisServer, redis: Redis, tmp_path: Path, live: TradierAccount
) -> AsyncIterator[httpx.AsyncClient]:
    settings = settings_for(
        redis_srv.url,
        symbols=["AAPL", "MSFT"],
        webhook_passphrase=PASS,
        admin_api_key=ADMIN,
        accounts=accounts_file(tmp_path, live),
        market_hours="always",
        paper_commission_per_share=0.01,
        paper_min_commission=1.0,
        paper_slippage_bps=0,
        sim_quote_rate=20,
    )
    app = create_app(settings)
    async with (
        serve(app) as url,
        httpx.AsyncClient(base_url=url, timeout=10, headers={"X-API-Key": ADMIN}) as client,
    ):
        client.app = app  # type: ignore[attr-defined]
        await until_json(
            client, "/api/v1/accounts", lambda b: all(a["held_by"] for a in b["accounts"]), 10
        )
        yield client


async def post(client: httpx.AsyncClient, **alert: Any) -> httpx.Response:
    body = {"passphrase": PASS, "ticker": "AAPL", "action": "buy", "quantity": 3, **alert}
    return await client.post("/webhook/tradingview", content=json.dumps(body))


async def test_a_tradier_account_with_its_own_cash_buys_on_its_first_day(
    api: httpx.AsyncClient,
) -> None:
    risk = await until_json(api, "/api/v1/risk", lambda b: True, params={"account": "live"})
    assert risk["daily"]["day_start_equity"] == 60_000.0
    assert risk["daily"]["pnl"] == 0.0 and risk["account"]["cash"] == 60_000.0
    r = await post(api, strategy="mirror", alert_id="first-buy")
    assert r.status_code == 202, r.text
    live = next(d for d in r.json()["decisions"] if d["account"] == "live")
    assert live["status"] == "accepted", r.text


async def test_one_alert_places_one_order_per_routed_account_and_halting_one_leaves_the_other(
    api: httpx.AsyncClient, live: TradierAccount, redis: Redis
) -> None:
    r = await post(api, strategy="mirror", alert_id="mirror-1")
    assert r.status_code == 202, r.text
    body = r.json()
    assert [(d["account"], d["status"]) for d in body["decisions"]] == [
        ("pap", "accepted"),
        ("live", "accepted"),
    ]
    assert body["account"] == "pap" and body["order_id"] == body["decisions"][0]["order_id"]
    # one order in each: the paper book fills it, the Tradier fake received one POST
    await until_json(
        api, "/api/v1/positions", lambda b: b["positions"] != [], params={"account": "pap"}
    )
    for _ in range(100):
        if live.posts():
            break
        await asyncio.sleep(0.05)
    assert live.posts() == 1
    assert live.forms[0]["tag"] == body["decisions"][1]["order_id"]
    pap_orders = (await api.get("/api/v1/orders", params={"account": "pap"})).json()["orders"]
    live_orders = (await api.get("/api/v1/orders", params={"account": "live"})).json()["orders"]
    assert [o["id"] for o in pap_orders] == [body["decisions"][0]["order_id"]]
    assert [o["id"] for o in live_orders] == [body["decisions"][1]["order_id"]]
    # a repeat is one decision per account, the same orders, nothing new placed
    again = (await post(api, strategy="mirror", alert_id="mirror-1")).json()
    assert again["duplicate"] is True
    assert [d["order_id"] for d in again["decisions"]] == [d["order_id"] for d in body["decisions"]]
    assert live.posts() == 1

    halt = await api.post(
        "/api/v1/risk/kill-switch", params={"account": "live"}, json={"state": "HALTED"}
    )
    assert halt.status_code == 200 and halt.json()["state"] == "HALTED", halt.text
    r = await post(api, strategy="mirror", alert_id="mirror-2", ticker="MSFT")
    decisions = {d["account"]: d for d in r.json()["decisions"]}
    assert decisions["pap"]["status"] == "accepted"
    assert decisions["live"]["status"] == "denied" and decisions["live"]["check"] == "kill_switch"
    listed = {a["id"]: a for a in (await api.get("/api/v1/accounts")).json()["accounts"]}
    assert listed["live"]["kill_switch"] == "HALTED" and listed["pap"]["kill_switch"] == "ACTIVE"

    # the global kill switch halts every account
    await api.post("/api/v1/risk/kill-switch", params={"account": "all"}, json={"state": "HALTED"})
    r = await post(api, strategy="mirror", alert_id="mirror-3")
    assert {d["account"]: d["check"] for d in r.json()["decisions"]} == {
        "pap": "kill_switch",
        "live": "kill_switch",
    }
    assert (await api.get("/api/v1/positions", params={"account": "nope"})).status_code == 404


async def test_risk_and_account_report_the_ledgers_cash_equity_and_daily_pnl(
    api: httpx.AsyncClient, redis: Redis
) -> None:
    """With commissions on, the risk checks and the API read one book."""
    for i, (action, qty) in enumerate([("buy", 10), ("buy", 5), ("sell", 12), ("sell", 6)]):
        r = await post(api, action=action, quantity=qty, alert_id=f"c{i}")
        assert r.json()["status"] == "accepted", r.text
    ledger = None
    for _ in range(200):
        ledger = await ExecutionStore(redis, "pap").load_book()
        if ledger is not None and ledger.position("AAPL") == -3 and ledger.commissions_today >= 5:
            break
        await asyncio.sleep(0.05)
    assert ledger is not None and ledger.position("AAPL") == -3
    # five fills at the $1 minimum (the last sell reverses: it closes 3, then shorts 3)
    assert ledger.commissions_today == pytest.approx(5.0)
    account = (await api.get("/api/v1/account", params={"account": "pap"})).json()
    risk = (await api.get("/api/v1/risk", params={"account": "pap"})).json()
    ledger = await ExecutionStore(redis, "pap").load_book()
    assert ledger is not None
    state = ledger.state()
    assert account["cash"] == risk["account"]["cash"] == state.cash
    assert account["equity"] == risk["account"]["equity"] == state.equity
    assert risk["daily"]["pnl"] == round(ledger.daily_pnl, 2)
    assert risk["daily"]["day_start_equity"] == 25_000.0
    # and the engine's risk checks hold the same cash (commissions included)
    engine = api.app.state.services.execution.engine("pap")  # type: ignore[attr-defined]
    assert engine.risk.book is engine.book
    fills = [f for f in await ExecutionStore(redis, "pap").fills() if f.account == "pap"]
    spent = sum(f.quantity * f.price * f.side.sign + f.commission for f in fills)
    assert engine.risk.book.cash == pytest.approx(25_000.0 - spent)
    assert engine.risk.daily_pnl == pytest.approx(engine.book.daily_pnl, abs=0.01)
