"""Shared pieces for the fault tests: a datahub in its own process, open-loop webhook
load that records what every client was told, and checks against what Redis holds.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis

from app.bus import Keys
from app.embedded import stop_process
from tests.servers import free_port, wait_for_port

LONG = os.environ.get("CHAOS_LONG", "").lower() in {"1", "true", "yes"}
BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]

PASS = "chaos-passphrase"
ADMIN = "chaos-admin-key"
SYMBOLS = ["AAPL", "MSFT", "GOOGL", "NVDA", "AMD", "TSLA", "SPY", "QQQ", "IWM", "DIA"]
# Permissive limits so the load itself is not what gets denied; one check stays on
# (quantity <= 50) so a known share of the alerts is denied and must be recorded too.
RISK = """
rate_limit: null
duplicate: null
price_collar: null
volatility: null
circuit_breaker: null
buying_power: null
min_balance: null
concentration: null
sector_concentration: null
leverage: null
max_open_positions: {max_positions: 100}
daily_loss: {max_loss: 1000000}
position_size: {max_shares: 100000, max_notional: 100000000}
order_notional: {max_notional: 100000000}
quantity: {min_quantity: 1, max_quantity: 50}
"""


class Datahub:
    """``trader-ops datahub`` (or another ``command``) in its own process; ``kill()`` is
    SIGKILL (no clean-up runs). ``env`` adds settings; ``name`` tells its logs apart."""

    def __init__(
        self,
        redis_url: str,
        tmp: Path,
        port: int | None = None,
        *,
        command: tuple[str, ...] = ("datahub",),
        env: dict[str, str] | None = None,
        name: str = "datahub",
    ) -> None:
        self.port = port or free_port()
        self.tmp = tmp
        self.command = command
        self.name = name
        risk = tmp / "risk.yaml"
        risk.write_text(RISK)
        self.env = {
            **os.environ,
            "TRADEROPS_REDIS_URL": redis_url,
            "TRADEROPS_HTTP_HOST": "127.0.0.1",
            "TRADEROPS_HTTP_PORT": str(self.port),
            "TRADEROPS_SYMBOLS": ",".join(SYMBOLS),
            "TRADEROPS_SIM_QUOTE_RATE": "5",
            "TRADEROPS_WEBHOOK_PASSPHRASE": PASS,
            "TRADEROPS_ADMIN_API_KEY": ADMIN,
            "TRADEROPS_RISK_CONFIG": str(risk),
            "TRADEROPS_MARKET_HOURS": "always",
            "TRADEROPS_LOG_LEVEL": "WARNING",
            "TRADEROPS_DATA_DIR": str(tmp),
            # the load comes from one address: lift the per-source webhook limit
            "TRADEROPS_WEBHOOK_RATE_PER_SOURCE": "100000",
            "TRADEROPS_WEBHOOK_BURST_PER_SOURCE": "100000",
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = (self.tmp / f"{self.name}-{self.starts}.log").open("wb")
        self.starts += 1
        self.proc = subprocess.Popen(
            [str(BIN / "trader-ops"), *self.command],
            env=self.env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        wait_for_port(self.port, timeout=60, proc=self.proc)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is None:
            return
        stop_process(self.proc, timeout=15)
        self.proc = None

    def logs(self) -> str:
        return "\n".join(
            p.read_text(errors="replace")[-4000:]
            for p in sorted(self.tmp.glob(f"{self.name}-*.log"))
        )


def alert_body(i: int, tag: str) -> dict[str, Any]:
    """Alert ``i`` of a run: buys of 1-3 shares over ten symbols; every 7th asks for 100
    shares and is denied by the quantity check."""
    return {
        "passphrase": PASS,
        "ticker": SYMBOLS[i % len(SYMBOLS)],
        "action": "buy",
        "quantity": 100 if i % 7 == 3 else 1 + i % 3,
        "alert_id": f"{tag}-{i:05d}",
    }


@dataclass
class Told:
    """What one client was told for one alert (``status`` 0: no answer at all)."""

    alert_id: str
    status: int = 0
    body: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    sent_at: float = 0.0  # time.monotonic()
    answered_at: float = 0.0


async def post_alert(client: httpx.AsyncClient, base: str, body: dict[str, Any]) -> Told:
    told = Told(body["alert_id"], sent_at=time.monotonic())
    try:
        r = await client.post(f"{base}/webhook/tradingview", content=json.dumps(body))
    except httpx.HTTPError as exc:
        told.error = type(exc).__name__
        return told
    finally:
        told.answered_at = time.monotonic()
    told.status = r.status_code
    try:
        told.body = r.json()
    except ValueError:
        told.error = "not json"
    return told


async def open_loop_alerts(
    base: str | list[str],
    tag: str,
    count: int,
    rate: float,
    *,
    timeout: float = 3.0,
    body: Callable[[int, str], dict[str, Any]] = alert_body,
) -> list[Told]:
    """Fire ``count`` alerts at ``rate``/s on a fixed schedule (no waiting on answers),
    round-robin over ``base`` when it is several datahubs."""
    bases = [base] if isinstance(base, str) else base
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=32)
    async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
        start = time.perf_counter()
        tasks = []
        for i in range(count):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            target = bases[i % len(bases)]
            tasks.append(asyncio.create_task(post_alert(client, target, body(i, tag))))
        return list(await asyncio.gather(*tasks))


async def wait_http(base: str, path: str = "/health", timeout: float = 60.0) -> float:
    """Seconds until ``path`` answers 200."""
    t0 = time.monotonic()
    async with httpx.AsyncClient(timeout=2) as client:
        while True:
            try:
                if (await client.get(base + path)).status_code == 200:
                    return time.monotonic() - t0
            except httpx.HTTPError:
                pass
            if time.monotonic() - t0 > timeout:
                raise TimeoutError(f"{base}{path} not answering after {timeout}s")
            await asyncio.sleep(0.1)


# -- what Redis holds -----------------------------------------------------------------
async def all_orders(redis: Redis, account: str = "default") -> list[dict[str, Any]]:
    ids = await redis.zrange(Keys.account(account).recent_orders, 0, -1)
    if not ids:
        return []
    raws = await redis.mget([Keys.order(i.decode()) for i in ids])
    return [json.loads(r) for r in raws if r]


async def fill_entries(redis: Redis) -> list[dict[str, Any]]:
    entries = await redis.xrange(Keys.FILLS_STREAM)
    return [json.loads(fields[b"fill"]) for _, fields in entries]


async def decision(
    redis: Redis, alert_id: str, account: str = "default"
) -> dict[str, Any] | str | None:
    raw = await redis.get(Keys.account(account).alert(alert_id))
    if raw is None:
        return None
    if raw.startswith(b"pending"):  # a claim not yet decided (b"pending:<token>")
        return "pending"
    return dict(json.loads(raw))


def duplicates(values: list[str]) -> dict[str, int]:
    return {k: n for k, n in Counter(values).items() if n > 1}


async def wait_all_filled(redis: Redis, timeout: float) -> list[dict[str, Any]]:
    """Every order terminal; returns the orders (fails listing the stragglers)."""
    deadline = time.monotonic() + timeout
    while True:
        orders = await all_orders(redis)
        open_ = [o for o in orders if o["status"] not in ("filled", "canceled", "rejected")]
        if not open_:
            return orders
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{len(open_)} orders not terminal after {timeout}s: "
                f"{[(o['id'], o['status']) for o in open_[:5]]}"
            )
        await asyncio.sleep(0.2)
