"""Secrets never reach a log line, `config show`, a response, /metrics or a span.

Distinctive secret values are configured, then `trader-ops config show` runs and a real
datahub (real redis-server, real HTTP) takes authenticated, unauthenticated and malformed
traffic, with every log record captured at DEBUG as text and through the JSON formatter.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from redis.asyncio import Redis
from typer.testing import CliRunner

from app.cli import cli
from app.datahub.app import create_app
from app.observability.logging import JsonFormatter
from app.observability.tracing import instrument_app, setup_tracing
from tests.apps import serve, settings_for
from tests.servers import RedisServer

SECRETS = {
    "webhook_passphrase": "wh-pass-7Qx9c2-LEAKCANARY",
    "webhook_hmac_key": "hmac-key-R5t1vz-LEAKCANARY",
    "admin_api_key": "admin-key-Z3k8mw-LEAKCANARY",
    "tradier_token": "tradier-tok-M4p2hs-LEAKCANARY",
    "tradenote_master_key": "tn-master-V6w0jd-LEAKCANARY",
}
FILE_SECRET = "tradenote_master_key"  # given through TRADEROPS_..._FILE, the others by env


class Recorder(SimpleSpanProcessor):
    """Exports only while armed: the process has one provider (see RECIPES), and other
    tests' spans must not pile up in memory here."""

    active = False

    def on_end(self, span: ReadableSpan) -> None:
        if self.active:
            super().on_end(span)


EXPORTER = InMemorySpanExporter()
RECORDER = Recorder(EXPORTER)
setup_tracing("trader-ops-secrets-test", span_processor=RECORDER)


def leaked(text: str) -> list[str]:
    return [name for name, value in SECRETS.items() if value in text]


@pytest.fixture
def captured(caplog: pytest.LogCaptureFixture) -> Iterator[io.StringIO]:
    """Every record at DEBUG: caplog (text) plus a JSON-formatted copy (with extras)."""
    caplog.set_level(logging.DEBUG)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield stream
    finally:
        root.removeHandler(handler)


def all_log_text(caplog: pytest.LogCaptureFixture, stream: io.StringIO) -> str:
    json_formatter = JsonFormatter()
    parts = [caplog.text, stream.getvalue()]
    parts += [json_formatter.format(record) for record in caplog.records]
    parts += [repr(record.__dict__) for record in caplog.records]
    return "\n".join(parts)


def test_config_show_and_its_logs_hold_no_secret(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    captured: io.StringIO,
) -> None:
    for name, value in SECRETS.items():
        if name == FILE_SECRET:
            path = tmp_path / name
            path.write_text(value + "\n")
            path.chmod(0o600)
            monkeypatch.setenv(f"TRADEROPS_{name.upper()}_FILE", str(path))
        else:
            monkeypatch.setenv(f"TRADEROPS_{name.upper()}", value)
    monkeypatch.setenv("TRADEROPS_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("TRADEROPS_TRADIER_ACCOUNT_ID", "VA000001")

    result = CliRunner().invoke(cli, ["config", "show"])

    assert result.exit_code == 0, result.output
    output = result.output + (result.stderr if result.stderr_bytes is not None else "")
    rows = {line.split()[0]: line for line in output.splitlines() if line.strip()}
    for name in SECRETS:
        row = rows[f"TRADEROPS_{name.upper()}"]
        assert "********" in row, row  # set, shown redacted
    assert "VA000001" in rows["TRADEROPS_TRADIER_ACCOUNT_ID"]  # non-secrets are shown
    assert leaked(output) == []
    assert leaked(all_log_text(caplog, captured)) == []


async def _until_filled(client: httpx.AsyncClient, order_id: str, admin: dict[str, str]) -> None:
    async with asyncio.timeout(10):
        while (await client.get(f"/api/v1/orders/{order_id}", headers=admin)).json().get(
            "status"
        ) != "filled":
            await asyncio.sleep(0.05)


async def test_datahub_traffic_logs_no_secret(
    redis_srv: RedisServer,
    redis: Redis,
    caplog: pytest.LogCaptureFixture,
    captured: io.StringIO,
    capfd: pytest.CaptureFixture[str],
) -> None:
    EXPORTER.clear()
    RECORDER.active = True
    try:
        await _drive_datahub(redis_srv, caplog, captured, capfd)
    finally:
        RECORDER.active = False
        EXPORTER.clear()


async def _drive_datahub(
    redis_srv: RedisServer,
    caplog: pytest.LogCaptureFixture,
    captured: io.StringIO,
    capfd: pytest.CaptureFixture[str],
) -> None:
    settings = settings_for(redis_srv.url, symbols=["AAPL", "MSFT"], log_level="DEBUG", **SECRETS)
    app = create_app(settings)
    instrument_app(app)  # also trace it (a no-op if the factory already did)
    passphrase = SECRETS["webhook_passphrase"]
    admin = {"X-API-Key": SECRETS["admin_api_key"]}
    wrong_admin = {"X-API-Key": "not-the-admin-key"}
    bodies: list[str] = []

    async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:

        async def call(method: str, path: str, **kw: Any) -> httpx.Response:
            response = await client.request(method, path, **kw)
            bodies.append(f"{method} {path} {response.status_code} {response.text}")
            return response

        hook = "/webhook/tradingview"
        alert = {"ticker": "AAPL", "action": "buy", "quantity": 1}
        # wrong passphrase, missing passphrase, bad signature, malformed bodies
        wrong = await call("POST", hook, json={**alert, "passphrase": "guess", "alert_id": "w1"})
        assert wrong.status_code == 401
        assert (await call("POST", hook, json={**alert, "alert_id": "w2"})).status_code == 401
        signed = await call(
            "POST", hook, content=json.dumps(alert), headers={"X-Signature": "0" * 64}
        )
        assert signed.status_code == 401
        assert (await call("POST", hook, content="{not json")).status_code == 422
        assert (await call("POST", hook, content="BUY AAPL 10 please")).status_code == 422
        # authenticated (the real passphrase is in every TradingView body) but invalid
        for bad in (
            {**alert, "action": "hold"},
            {**alert, "ticker": "NOPE"},
            {**alert, "quantity": -3},
        ):
            r = await call("POST", hook, json={**bad, "passphrase": passphrase})
            assert r.status_code == 422, r.text
        # authenticated and accepted: the order is placed and filled by the paper broker
        ok = await call("POST", hook, json={**alert, "passphrase": passphrase, "alert_id": "ok1"})
        assert ok.status_code == 202, ok.text
        await _until_filled(client, ok.json()["order_id"], admin)
        again = await call(
            "POST", hook, json={**alert, "passphrase": passphrase, "alert_id": "ok1"}
        )
        assert again.json()["duplicate"] is True
        # admin API: wrong key, right key, a malformed admin body
        assert (await call("GET", "/api/v1/orders", headers=wrong_admin)).status_code == 401
        assert (await call("GET", "/api/v1/orders")).status_code == 401
        assert (await call("GET", "/api/v1/risk", headers=admin)).status_code == 200
        assert (await call("GET", "/api/v1/account", headers=admin)).status_code == 200
        bad_kill = await call(
            "POST", "/api/v1/risk/kill-switch", headers=admin, json={"state": "PANIC"}
        )
        assert bad_kill.status_code == 422
        for state in ("HALTED", "ACTIVE"):
            r = await call("POST", "/api/v1/risk/kill-switch", headers=admin, json={"state": state})
            assert r.status_code == 200, r.text
        for path in ("/health", "/ready", "/metrics", "/udf/config", "/openapi.json"):
            assert (await call("GET", path)).status_code == 200

    stdio = capfd.readouterr()
    assert leaked("\n".join(bodies)) == [], "a response echoes a secret"
    log_text = all_log_text(caplog, captured)
    assert "wrong or missing passphrase" in log_text  # the capture did see the app's logs
    assert leaked(log_text) == []
    assert leaked(stdio.out + stdio.err) == []
    spans = EXPORTER.get_finished_spans()
    assert spans, "the instrumented app made no spans"
    assert leaked("\n".join(span.to_json() for span in spans)) == []
