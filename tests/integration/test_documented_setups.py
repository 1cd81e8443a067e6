"""Every set-up the README documents, started the way a new user starts it: `trader-ops
run` and `trader-ops datahub` as real processes, with the paper defaults, the single
Tradier account from `TRADEROPS_TRADIER_*` (against the Tradier-protocol server), and the
shipped `deployment/accounts.example.yaml`; each is sent the README's own alert messages
(placeholders filled as TradingView fills them). A refused start is one line."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.fakes.tradier_orders import TradierAccount
from tests.fakes.tradier_server import FakeTradier, tradier_quote
from tests.servers import RedisServer, free_port

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
EXAMPLE = ROOT / "deployment" / "accounts.example.yaml"
PASSPHRASE = "documented-pass"
ADMIN_KEY = "documented-admin-key"
TOKEN = "fake-token"


def readme_alerts() -> list[dict[str, Any]]:
    """The README's alert messages, with TradingView's placeholders filled in."""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```json\n(.*?)\n```", text, flags=re.S)
    alerts = [b for b in blocks if '"passphrase"' in b]
    assert len(alerts) >= 3, "the README lost its alert message examples"
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    filled = {
        "{{ticker}}": "AAPL",
        "{{interval}}": "5",
        "{{time}}": now,
        "{{timenow}}": now,
        "{{strategy.order.action}}": "buy",
        "{{strategy.order.contracts}}": "3",
        "{{strategy.order.id}}": "Long",
    }
    out = []
    for block in alerts:
        for placeholder, value in filled.items():
            block = block.replace(placeholder, value)
        assert "{{" not in block, f"a placeholder the test does not fill: {block}"
        out.append(json.loads(block.replace("YOUR_PASSPHRASE", PASSPHRASE)))
    return out


def base_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEROPS_")}
    env.update(
        TRADEROPS_DATA_DIR=str(data_dir),
        TRADEROPS_LOG_LEVEL="WARNING",
        TRADEROPS_KAIROS_JOBS=str(data_dir / "no-jobs"),
        TRADEROPS_WEBHOOK_PASSPHRASE=PASSPHRASE,
        TRADEROPS_ADMIN_API_KEY=ADMIN_KEY,
        **extra,
    )
    return env


class Stack:
    """One `trader-ops` process and an HTTP client for it."""

    def __init__(self, proc: asyncio.subprocess.Process, port: int) -> None:
        self.proc = proc
        self.http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10)

    async def wait_up(self, timeout: float = 90) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if self.proc.returncode is not None:
                out = await self.proc.stdout.read() if self.proc.stdout else b""
                raise AssertionError(f"exited {self.proc.returncode}: {out.decode()}")
            try:
                if (await self.http.get("/ready")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
        raise TimeoutError("the stack did not come up")

    async def alert(self, body: dict[str, Any]) -> httpx.Response:
        return await self.http.post("/webhook/tradingview", content=json.dumps(body))

    async def admin(self, path: str) -> Any:
        answer = await self.http.get(path, headers={"X-API-Key": ADMIN_KEY})
        assert answer.status_code == 200, answer.text
        return answer.json()

    async def stop(self) -> int:
        await self.http.aclose()
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 30)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        assert self.proc.returncode is not None
        return self.proc.returncode


async def start(command: list[str], env: dict[str, str], port: int) -> Stack:
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "trader-ops"),
        *command,
        "--port",
        str(port),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    return Stack(proc, port)


async def refused(command: list[str], env: dict[str, str]) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "trader-ops"),
        *command,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, (out + err).decode()


@pytest.fixture
async def tradier() -> AsyncIterator[tuple[FakeTradier, dict[str, TradierAccount]]]:
    """The Tradier-protocol server with the single account of the plain settings and the
    `live` account of the shipped example."""
    fake = FakeTradier(token=TOKEN)
    accounts = {a: TradierAccount(fake, a) for a in ("VA000001", "VA00000000")}
    for account in accounts.values():
        account.balances = {"total_equity": 50_000.0, "total_cash": 50_000.0}
    fake.quotes["AAPL"] = tradier_quote("AAPL", 187.5)
    await fake.start()
    try:
        yield fake, accounts
    finally:
        await fake.close()


def tradier_env(fake: FakeTradier) -> dict[str, str]:
    return {
        "TRADEROPS_TRADIER_BASE_URL": fake.base_url,
        "TRADEROPS_TRADIER_STREAM_URL": fake.stream_url,
    }


MODES = ["run", "datahub"]


def command_env(mode: str, redis_srv: RedisServer, env: dict[str, str]) -> dict[str, str]:
    """`run` starts its own Redis; `datahub` is pointed at one, as the README says."""
    if mode == "datahub":
        redis.Redis.from_url(redis_srv.url).flushall()  # a fresh stack on a shared server
        env = {**env, "TRADEROPS_REDIS_URL": redis_srv.url}
    return env


@pytest.mark.parametrize("mode", MODES)
async def test_paper_defaults_take_the_readme_alerts(
    mode: str, tmp_path: Path, redis_srv: RedisServer
) -> None:
    port = free_port()
    env = command_env(mode, redis_srv, base_env(tmp_path / "data"))
    stack = await start([mode], env, port)
    try:
        await stack.wait_up()
        buy, strategy_order, exit_, calls, condor = readme_alerts()
        first = await stack.alert(buy)
        assert first.status_code == 202, first.text
        assert first.json()["status"] == "accepted" and first.json()["quantity"] == 10
        again = await stack.alert(buy)  # TradingView's copy of the same alert
        assert again.json()["duplicate"] is True
        assert again.json()["order_id"] == first.json()["order_id"]
        second = await stack.alert(strategy_order)  # "3" from {{strategy.order.contracts}}
        assert second.status_code == 202, second.text
        assert second.json()["decisions"] == [
            {
                "account": "default",
                "status": "accepted",
                "order_id": second.json()["order_id"],
                "quantity": 3,
            }
        ]
        closed = await stack.alert(exit_)  # closes momentum's 3, not the plain buy's 10
        assert closed.status_code == 202, closed.text
        assert closed.json()["quantity"] == 3
        positions = await wait_positions(stack, {"AAPL": 10})
        assert [(p["strategy"], p["quantity"]) for p in positions[0]["strategies"]] == [
            ("default", 10)
        ]
        # the README's option messages, on the simulated feed's chains
        bought = await stack.alert(calls)
        assert bought.status_code == 202, bought.text
        assert bought.json()["status"] == "accepted", bought.json()
        (call,) = bought.json()["option"]["legs"]
        sold = await stack.alert(condor)
        assert sold.status_code == 202, sold.text
        answer = sold.json()
        assert answer["status"] == "accepted", answer
        assert answer["option"]["net"] == "credit" and len(answer["option"]["legs"]) == 4
        assert answer["quantity"] * answer["option"]["max_loss"] <= 1000
        order = await stack.admin(f"/api/v1/orders/{answer['order_id']}")
        assert len(order["request"]["legs"]) == 4 and order["request"]["net"] == "credit"
        # a limit at the mid (rounded in the trader's favour) rests until the mid reaches it
        assert order["status"] in ("new", "submitted", "filled"), order
        for _ in range(100):
            positions = (await stack.admin("/api/v1/positions"))["positions"]
            held = {p["symbol"]: p["quantity"] for p in positions}
            if held.get(call["symbol"]) == 2:
                break
            await asyncio.sleep(0.1)
        assert held["AAPL"] == 10 and held[call["symbol"]] == 2, held
    finally:
        await stack.stop()


async def wait_positions(stack: Stack, want: dict[str, int]) -> list[dict[str, Any]]:
    for _ in range(100):
        positions = (await stack.admin("/api/v1/positions"))["positions"]
        if {p["symbol"]: p["quantity"] for p in positions} == want:
            return list(positions)
        await asyncio.sleep(0.1)
    raise AssertionError(f"positions {positions} never became {want}")


@pytest.mark.parametrize("mode", MODES)
async def test_the_single_tradier_account_from_the_plain_settings(
    mode: str,
    tmp_path: Path,
    redis_srv: RedisServer,
    tradier: tuple[FakeTradier, dict[str, TradierAccount]],
) -> None:
    fake, accounts = tradier
    env = base_env(
        tmp_path / "data",
        TRADEROPS_BROKER="tradier",
        TRADEROPS_FEED="tradier",
        TRADEROPS_TRADIER_TOKEN=TOKEN,
        TRADEROPS_TRADIER_ACCOUNT_ID="VA000001",
        TRADEROPS_MARKET_HOURS="always",  # the test runs at any hour
        TRADEROPS_SYMBOLS="AAPL",
        **tradier_env(fake),
    )
    stack = await start([mode], command_env(mode, redis_srv, env), free_port())
    try:
        await stack.wait_up()
        buy = readme_alerts()[0]
        answer = await stack.alert(buy)
        assert answer.status_code == 202, answer.text
        assert answer.json()["status"] == "accepted"
        for _ in range(100):  # the order reaches Tradier in the background
            if accounts["VA000001"].forms:
                break
            await asyncio.sleep(0.1)
        (form,) = accounts["VA000001"].forms
        assert (form["symbol"], form["side"], form["quantity"]) == ("AAPL", "buy", "10")
        assert not accounts["VA00000000"].forms
    finally:
        await stack.stop()


@pytest.mark.parametrize("mode", MODES)
async def test_the_shipped_accounts_example_routes_as_documented(
    mode: str,
    tmp_path: Path,
    redis_srv: RedisServer,
    tradier: tuple[FakeTradier, dict[str, TradierAccount]],
) -> None:
    fake, accounts = tradier
    env = base_env(
        tmp_path / "data",
        TRADEROPS_ACCOUNTS=str(EXAMPLE),
        TRADEROPS_TRADIER_TOKEN_LIVE=TOKEN,
        **tradier_env(fake),
    )
    stack = await start([mode], command_env(mode, redis_srv, env), free_port())
    try:
        await stack.wait_up()
        listed = await stack.admin("/api/v1/accounts")
        assert [(a["id"], a["broker"]) for a in listed["accounts"]] == [
            ("paper", "paper"),
            ("live", "tradier"),
        ]
        momentum = {**readme_alerts()[1], "quantity": "10"}
        answer = await stack.alert(momentum)
        assert answer.status_code == 202, answer.text
        by_account = {d["account"]: d for d in answer.json()["decisions"]}
        assert by_account["paper"]["quantity"] == 10
        assert by_account["live"]["quantity"] == 5  # multiplier 0.5
        live = accounts["VA00000000"]
        for _ in range(100):  # the live account's order reaches Tradier in the background
            if live.forms:
                break
            await asyncio.sleep(0.1)
        assert [(f["symbol"], f["quantity"]) for f in live.forms] == [("AAPL", "5")]
        quote = (await stack.http.get("/api/v1/quotes", params={"symbols": "AAPL"})).json()
        last = quote["quotes"]["AAPL"]["last"]
        other = await stack.alert(readme_alerts()[0])  # the "*" route: live sized by dollars
        by_account = {d["account"]: d for d in other.json()["decisions"]}
        assert by_account["paper"]["quantity"] == 10
        # $2,000 worth at the price of the moment (the simulated feed moves a little)
        assert abs(by_account["live"]["quantity"] - 2000 // last) <= 1
    finally:
        await stack.stop()
    if mode == "run":  # the banner names the accounts it runs, not "broker paper"
        assert stack.proc.stdout is not None
        banner = (await stack.proc.stdout.read()).decode()
        assert "accounts    paper (paper), live (tradier)" in banner, banner


async def test_refused_starts_are_one_line(tmp_path: Path) -> None:
    """What a user gets wrong in the documented set-ups stops start-up with one line
    naming the setting or the field, for `run` and `datahub` alike."""
    no_token = base_env(tmp_path / "a", TRADEROPS_ACCOUNTS=str(EXAMPLE))
    broken = tmp_path / "accounts.yaml"
    broken.write_text(EXAMPLE.read_text())  # names risk-live.yaml, which is not beside it
    cases = [
        (no_token, "accounts.1 (live): tradier.token_env: TRADEROPS_TRADIER_TOKEN_LIVE"),
        (
            base_env(tmp_path / "b", TRADEROPS_ACCOUNTS=str(broken)),
            "accounts.1 (live): risk_config:",
        ),
        (
            base_env(tmp_path / "c", TRADEROPS_BROKER="tradier"),
            "TRADEROPS_TRADIER_TOKEN",
        ),
        (
            base_env(
                tmp_path / "d",
                TRADEROPS_ACCOUNTS=str(_write(tmp_path / "all.yaml", "accounts: [{id: all}]\n")),
            ),
            "reserved",
        ),
    ]
    for env, expected in cases:
        for mode in MODES:
            code, output = await refused([mode], env)
            lines = output.strip().splitlines()
            assert code != 0 and len(lines) == 1, output
            assert expected in lines[0], output


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
