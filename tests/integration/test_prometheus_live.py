"""A real Prometheus scrapes a real datahub: every dashboard query runs, the rules load.

The datahub runs in-process (real HTTP, real redis-server) and takes synthetic traffic:
quotes, UDF history, webhooks (accepted, denied by the kill switch, unauthorised,
malformed), admin calls and a WebSocket client. A `prometheus` (the binary, 2.42 here)
scrapes it every second with the repository's rule files (copied, with group
``interval`` lowered to 1 s so recording rules evaluate within the test). Then:

- every expression of every Grafana panel (tests.dashboards.iter_panel_queries) parses
  and executes (status "success");
- the panels the traffic feeds return data (finite values where the traffic makes them
  so): webhook latency, HTTP request rate, quote rate, orders by status, kill switch,
  WebSocket clients, the recording rules and a firing alert;
- /api/v1/rules lists every rule group of deployment/prometheus/rules, all rules "ok".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
import yaml
from redis.asyncio import Redis

from app.datahub.app import create_app
from app.embedded import stop_process
from tests.apps import serve, settings_for
from tests.dashboards import iter_panel_queries, rule_files
from tests.servers import RedisServer, free_port, require_binary

pytestmark = pytest.mark.integration

PASS = "prometheus-live-passphrase"
ADMIN = "prometheus-live-admin-key"
SYMBOLS = ["AAPL", "MSFT", "SPY"]
SCRAPE = 1.0  # seconds, scrape and evaluation interval

RISK_YAML = """
rate_limit:
  global: {max_orders: 10000, window_seconds: 60}
  per_symbol: {max_orders: 10000, window_seconds: 60}
duplicate: null
price_collar: null
sizing:
  default: {mode: signal, quantity: 1}
"""

# (dashboard uid, panel title): each of the panel's queries must return data once the
# traffic below has been scraped. "data": some series; "finite": and every value a
# number (no NaN/Inf); "positive": and at least one of them above zero.
KEY_PANELS: dict[tuple[str, str], str] = {
    ("traderops-latency", "Webhook p99 (5m)"): "positive",  # recording rule
    ("traderops-latency", "Risk check p99 (5m)"): "positive",  # recording rule
    ("traderops-latency", "Webhook: receipt to decision"): "positive",
    ("traderops-latency", "Risk check"): "positive",
    ("traderops-latency", "Broker order round trip"): "positive",
    ("traderops-latency", "Market data feed requests"): "data",
    ("traderops-latency", "HTTP requests p99 by route"): "data",
    ("traderops-latency", "Webhook latency distribution"): "positive",
    ("traderops-health", "Targets up"): "positive",
    ("traderops-health", "Requests by route"): "positive",
    ("traderops-health", "Errors by route and status"): "positive",
    ("traderops-health", "Request latency p99 by route"): "data",
    ("traderops-health", "Quote rate"): "positive",
    ("traderops-health", "Quote publisher leases"): "positive",
    ("traderops-health", "WebSocket clients"): "positive",
    ("traderops-health", "Cache hit ratio"): "data",
    ("traderops-health", "Firing alerts"): "positive",
    ("traderops-trading", "Order transitions by broker and status"): "positive",
    ("traderops-trading", "Fills by broker"): "positive",
    ("traderops-trading", "Orders submitted"): "positive",
    ("traderops-trading", "Fills"): "positive",
    ("traderops-trading", "Webhook alerts by outcome"): "positive",
    ("traderops-trading", "Broker order round trip p99"): "positive",
    ("traderops-risk", "Kill switch"): "positive",
    ("traderops-risk", "Circuit breaker"): "finite",
    ("traderops-risk", "Risk denials by check"): "positive",
    ("traderops-risk", "Risk check latency"): "positive",
}


# -- Prometheus -------------------------------------------------------------------------


def write_config(directory: Path, target: str) -> Path:
    """prometheus.yml scraping ``target`` every second, with the repo's rules copied."""
    rules_dir = directory / "rules"
    rules_dir.mkdir(parents=True)
    for path in rule_files():
        document = yaml.safe_load(path.read_text())
        for group in document.get("groups", []):
            if "interval" in group:  # 15s in the repo: too slow for a test
                group["interval"] = f"{SCRAPE:g}s"
        (rules_dir / path.name).write_text(yaml.safe_dump(document, sort_keys=False))
    config = {
        "global": {
            "scrape_interval": f"{SCRAPE:g}s",
            "scrape_timeout": f"{SCRAPE:g}s",
            "evaluation_interval": f"{SCRAPE:g}s",
        },
        "rule_files": [str(rules_dir / "*.yml")],
        "scrape_configs": [
            {
                "job_name": "datahub",
                "metrics_path": "/metrics",
                "static_configs": [{"targets": [target], "labels": {"service": "datahub"}}],
            }
        ],
    }
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@contextlib.contextmanager
def prometheus(
    binary: str, config: Path, directory: Path
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    log_path = directory / "prometheus.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--web.listen-address=127.0.0.1:{port}",
                f"--storage.tsdb.path={directory / 'data'}",
                "--storage.tsdb.retention.time=1h",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield f"http://127.0.0.1:{port}", proc
        finally:
            stop_process(proc)
    if proc.returncode not in (0, -15):
        print(log_path.read_text())  # shown by pytest when the test fails


async def poll(
    what: str, check: Any, timeout: float, interval: float = 0.2, proc_log: Path | None = None
) -> Any:
    """Await ``check()`` until it returns a truthy value (the event loop keeps serving)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = await check()
        except httpx.HTTPError as exc:
            last = exc
        else:
            if last:
                return last
        await asyncio.sleep(interval)
    log = proc_log.read_text()[-3000:] if proc_log and proc_log.exists() else ""
    raise AssertionError(f"timed out waiting for {what}: last {last!r}\n{log}")


async def query(prom: httpx.AsyncClient, expr: str) -> dict[str, Any]:
    response = await prom.get("/api/v1/query", params={"query": expr})
    body: dict[str, Any] = response.json()
    return body


def values(body: dict[str, Any]) -> list[float]:
    data = body.get("data", {})
    if data.get("resultType") in ("scalar", "string"):
        return [float(data["result"][1])]
    return [float(series["value"][1]) for series in data.get("result", [])]


# -- the datahub and its traffic --------------------------------------------------------


@pytest.fixture
async def datahub(
    redis_srv: RedisServer, redis: Redis, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    risk = tmp_path / "risk.yaml"
    risk.write_text(RISK_YAML)
    settings = settings_for(
        redis_srv.url,
        symbols=SYMBOLS,
        webhook_passphrase=PASS,
        admin_api_key=ADMIN,
        risk_config=risk,
        sim_quote_rate=10,
        market_hours="always",
    )
    async with (
        serve(create_app(settings)) as url,
        httpx.AsyncClient(base_url=url, timeout=10, headers={"X-API-Key": ADMIN}) as client,
    ):
        try:
            yield client
        finally:
            await client.post("/api/v1/risk/kill-switch", json={"state": "ACTIVE"})


class Traffic:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.alerts = 0

    async def webhook(self, **fields: Any) -> httpx.Response:
        self.alerts += 1
        body = {
            "passphrase": PASS,
            "ticker": "AAPL",
            "action": "buy",
            "quantity": 1,
            "alert_id": f"prom-live-{self.alerts}",
            **fields,
        }
        return await self.client.post("/webhook/tradingview", content=json.dumps(body))

    async def kill_switch(self, state: str) -> None:
        r = await self.client.post("/api/v1/risk/kill-switch", json={"state": state})
        assert r.status_code == 200, r.text

    async def wave(self) -> None:
        """One round of everything a dashboard shows for the datahub."""
        c = self.client
        now = int(time.time())
        for _ in range(3):
            r = await c.get("/api/v1/quotes", params={"symbols": ",".join(SYMBOLS)})
            assert r.status_code == 200, r.text
        for symbol, resolution in (("AAPL", "5"), ("MSFT", "D"), ("AAPL", "5")):
            r = await c.get(
                "/udf/history",
                params={
                    "symbol": symbol,
                    "resolution": resolution,
                    "from": now - 5 * 86400,
                    "to": now,
                },
            )
            assert r.status_code == 200 and r.json()["s"] == "ok", r.text
        assert (await c.get("/udf/config")).status_code == 200
        assert (await c.get("/udf/symbols", params={"symbol": "NOPE"})).status_code == 404
        order_ids = []
        for ticker in ("AAPL", "MSFT", "SPY"):
            r = await self.webhook(ticker=ticker)
            assert r.status_code == 202, r.text
            order_ids.append(r.json()["order_id"])
        r = await self.webhook(action="sell", quantity=1)
        assert r.status_code == 202, r.text
        order_ids.append(r.json()["order_id"])
        assert (await self.webhook(passphrase="wrong")).status_code == 401
        r = await c.post("/webhook/tradingview", content="{not json")
        assert r.status_code == 422
        await self.kill_switch("HALTED")
        denied = await self.webhook()
        assert denied.status_code == 200 and denied.json()["status"] == "denied", denied.text
        await self.kill_switch("ACTIVE")
        for order_id in order_ids:
            await poll(
                f"order {order_id} filled",
                lambda oid=order_id: self._filled(oid),
                timeout=10,
                interval=0.05,
            )

    async def _filled(self, order_id: str) -> bool:
        body = (await self.client.get(f"/api/v1/orders/{order_id}")).json()
        return bool(body.get("status") == "filled")


QUOTE_PUBLISHERS = "sum(traderops_quote_publisher)"


async def ws_reader(url: str, connected: asyncio.Event) -> None:
    """A WebSocket client subscribed to quotes, draining frames until cancelled."""
    ws_url = url.replace("http://", "ws://") + "/stream"
    async with websockets.connect(ws_url) as ws:
        await ws.send(json.dumps({"op": "subscribe", "symbols": SYMBOLS}))
        connected.set()
        async for _ in ws:
            pass


# -- the test ---------------------------------------------------------------------------


@pytest.fixture
def prometheus_binary() -> str:
    """Checked before the datahub starts: under CI a missing binary fails, else skips."""
    return require_binary("prometheus")


async def test_dashboards_and_rules_against_a_live_prometheus(
    prometheus_binary: str, datahub: httpx.AsyncClient, tmp_path: Path
) -> None:
    binary = prometheus_binary
    target = str(datahub.base_url).rstrip("/").removeprefix("http://")
    traffic = Traffic(datahub)
    connected = asyncio.Event()
    reader = asyncio.create_task(ws_reader(str(datahub.base_url).rstrip("/"), connected))
    prom_dir = tmp_path / "prometheus"
    prom_dir.mkdir()
    config = write_config(prom_dir, target)
    log = prom_dir / "prometheus.log"
    try:
        async with asyncio.timeout(5):
            await connected.wait()
        # Wave 1 creates every labelled series (a counter child is born at its first
        # increment, which rate() cannot see); wave 2, after scrapes, moves them.
        await traffic.wave()
        with prometheus(binary, config, prom_dir) as (prom_url, proc):
            async with httpx.AsyncClient(base_url=prom_url, timeout=10) as prom:

                async def ready() -> bool:
                    if proc.poll() is not None:
                        pytest.fail(f"prometheus exited with {proc.returncode}:\n{log.read_text()}")
                    return (await prom.get("/-/ready")).status_code == 200

                await poll("prometheus ready", ready, timeout=15, proc_log=log)

                async def scraped(n: int) -> bool:
                    body = await query(prom, 'count_over_time(up{job="datahub"}[1m])')
                    return any(v >= n for v in values(body))

                async def target_up() -> bool:
                    return values(await query(prom, 'up{job="datahub"}')) == [1.0]

                await poll("the datahub target up", target_up, timeout=10, proc_log=log)
                await poll("two scrapes", lambda: scraped(2), timeout=10, proc_log=log)
                await traffic.wave()
                await traffic.kill_switch("HALTED")
                assert (await traffic.webhook()).json()["status"] == "denied"
                scrapes = values(await query(prom, 'count_over_time(up{job="datahub"}[1m])'))[0]
                await poll(
                    "three more scrapes",
                    lambda: scraped(int(scrapes) + 3),
                    timeout=10,
                    proc_log=log,
                )
                await poll(
                    "every rule evaluated",
                    lambda: rules_ok(prom),
                    timeout=10,
                    proc_log=log,
                )
                await poll(
                    "the kill-switch alert firing",
                    lambda: firing(prom, "KillSwitchEngaged"),
                    timeout=10,
                    proc_log=log,
                )

                async def publishing() -> bool:  # (a lease renewal late on a loaded box
                    # loses the lease for a moment: the panel reads the latest scrape)
                    return any(v > 0 for v in values(await query(prom, QUOTE_PUBLISHERS)))

                await poll("a quote publisher leading", publishing, timeout=15, proc_log=log)
                await check_every_panel_query(prom)
                await check_rule_groups(prom)
                await check_traffic_by_label(prom)
                assert values(await query(prom, "max(traderops_kill_switch_engaged)")) == [2.0]
                assert values(await query(prom, "sum(traderops_ws_clients)"))[0] >= 1
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader


async def by_label(prom: httpx.AsyncClient, label: str, expr: str) -> dict[str, float]:
    body = await query(prom, expr)
    assert body["status"] == "success", body
    return {s["metric"].get(label, ""): float(s["value"][1]) for s in body["data"]["result"]}


def moved(found: dict[str, float]) -> set[str]:
    return {label for label, value in found.items() if value > 0}


async def check_traffic_by_label(prom: httpx.AsyncClient) -> None:
    """The second wave moved the series it should, under the labels the panels split by."""
    outcomes = await by_label(
        prom, "outcome", "sum by (outcome) (increase(traderops_webhook_alerts_total[1m]))"
    )
    assert {"accepted", "denied", "unauthorized", "malformed"} <= moved(outcomes), outcomes
    statuses = await by_label(
        prom, "status", 'sum by (status) (increase(traderops_orders_total{broker="paper"}[1m]))'
    )
    assert {"submitted", "filled"} <= moved(statuses), statuses
    checks = await by_label(
        prom, "check", "sum by (check) (increase(traderops_risk_denials_total[1m]))"
    )
    assert "kill_switch" in moved(checks), checks
    routes = await by_label(
        prom, "route", "sum by (route) (increase(traderops_http_requests_total[1m]))"
    )
    wanted = {"/udf/history", "/api/v1/quotes", "/webhook/tradingview", "/metrics"}
    assert wanted <= moved(routes), routes
    frames = await by_label(prom, "", "sum(rate(traderops_ws_messages_sent_total[1m]))")
    assert moved(frames), f"no WebSocket frames sent: {frames}"  # drops need a slow client
    caches = await by_label(
        prom,
        "cache",
        'sum by (cache) (increase(traderops_cache_requests_total{result=~"hit|memory"}[1m]))',
    )
    assert {"history", "quote"} <= moved(caches), caches


async def firing(prom: httpx.AsyncClient, alertname: str) -> bool:
    body = await query(prom, f'ALERTS{{alertstate="firing", alertname="{alertname}"}}')
    return bool(values(body))


async def rules_ok(prom: httpx.AsyncClient) -> bool:
    groups = (await prom.get("/api/v1/rules")).json()["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    return bool(rules) and all(rule["health"] == "ok" for rule in rules)


async def check_every_panel_query(prom: httpx.AsyncClient) -> None:
    failures: list[str] = []
    empty: list[str] = []
    seen_key_panels: set[tuple[str, str]] = set()
    for uid, title, expr in iter_panel_queries():
        body = await query(prom, expr)
        if body.get("status") != "success":
            failures.append(f"{uid} / {title}: {expr}\n    -> {body.get('error')}")
            continue
        want = KEY_PANELS.get((uid, title))
        if want is None:
            continue
        seen_key_panels.add((uid, title))
        found = values(body)
        if not found:
            empty.append(f"{uid} / {title}: no data for {expr}")
        elif want in ("finite", "positive") and not any(math.isfinite(v) for v in found):
            # (a series of an idle label, e.g. a broker with no orders in the window, is
            # NaN in a quantile: the panel needs data for what traded, not for every label)
            empty.append(f"{uid} / {title}: nothing finite in {found} from {expr}")
        elif want == "positive" and not any(v > 0 for v in found):
            empty.append(f"{uid} / {title}: nothing above 0 {found} from {expr}")
    assert not failures, "dashboard queries Prometheus rejects:\n" + "\n".join(failures)
    missing = set(KEY_PANELS) - seen_key_panels
    assert not missing, f"key panels not found in the dashboards: {sorted(missing)}"
    assert not empty, "key panels without data:\n" + "\n".join(empty)


async def check_rule_groups(prom: httpx.AsyncClient) -> None:
    expected = {
        group["name"]
        for path in rule_files()
        for group in yaml.safe_load(path.read_text()).get("groups", [])
    }
    groups = (await prom.get("/api/v1/rules")).json()["data"]["groups"]
    assert {group["name"] for group in groups} == expected
    bad = [
        f"{group['name']}/{rule['name']}: {rule['health']} {rule.get('lastError', '')}"
        for group in groups
        for rule in group["rules"]
        if rule["health"] != "ok"
    ]
    assert not bad, bad
    recorded = [
        rule["name"]
        for group in groups
        for rule in group["rules"]
        if rule["type"] == "recording"
        and rule["name"].startswith("traderops:webhook_latency_seconds:")
    ]
    assert recorded, "the recording rules did not load"
