"""Real Prometheus + real Alertmanager with the repository's rules and Alertmanager config.

A tiny exporter (an HTTP server in this test) serves ``traderops_kill_switch_engaged 2``
(KillSwitchEngaged, critical) and a failed Kairos run (KairosJobFailed, warning).
``prometheus`` evaluates the repo's rule files (group interval lowered to 1 s) and sends to
``alertmanager`` (Debian's prometheus-alertmanager), whose config is rendered by
deployment/alertmanager/render.py with two channels: a generic webhook (a local receiver)
and Telegram, its ``api_url`` pointing at a local server speaking the Bot API's
``sendMessage``. Only the routes' timings are shortened in the test's copy.

Asserted: each route (``page`` for critical, ``notify`` for warnings) delivers exactly one
firing notification to each channel, carrying the alert's summary and its runbook link;
once the exporter stops reporting the condition, exactly one resolved notification each.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from app.embedded import stop_process
from tests.alertmanager import render
from tests.dashboards import rule_files
from tests.servers import free_port, require_binary, wait_for_port

pytestmark = pytest.mark.integration

TOKEN = "123456:live-test-token"
CHAT = -100777
RUNBOOK_BASE = "https://ops.example/"


class Recorder(ThreadingHTTPServer):
    """An HTTP server recording (path, body) of every POST; replies with ``reply``."""

    def __init__(self, reply: bytes) -> None:
        self.reply = reply
        self.requests: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with recorder.lock:
                    recorder.requests.append((self.path, body))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(recorder.reply)))
                self.end_headers()
                self.wfile.write(recorder.reply)

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def bodies(self) -> list[bytes]:
        with self.lock:
            return [b for _, b in self.requests]


class Exporter(ThreadingHTTPServer):
    """Serves whatever text ``self.metrics`` holds at /metrics."""

    def __init__(self) -> None:
        self.metrics = ""
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = exporter.metrics.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)


FIRING = (
    "# TYPE traderops_kill_switch_engaged gauge\n"
    "traderops_kill_switch_engaged 2\n"
    "# TYPE traderops_kairos_runs_total counter\n"
    'traderops_kairos_runs_total{job="momentum",outcome="error"} 1\n'
)
RESOLVED = "# TYPE traderops_kill_switch_engaged gauge\ntraderops_kill_switch_engaged 0\n"


@contextlib.contextmanager
def serving(server: ThreadingHTTPServer) -> Iterator[None]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def process(args: list[str], log_path: Path, port: int) -> Iterator[None]:
    with log_path.open("wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for_port(port, timeout=20, proc=proc)
            yield
        except BaseException:
            print(log_path.read_text())
            raise
        finally:
            stop_process(proc)


def alertmanager_config(out: Path, hook: str, telegram: str) -> Path:
    env = {
        "TRADEROPS_ALERTS_WEBHOOK_URL": f"{hook}/hook",
        "TRADEROPS_ALERTS_TELEGRAM_BOT_TOKEN": TOKEN,
        "TRADEROPS_ALERTS_TELEGRAM_CHAT_ID": str(CHAT),
        "TRADEROPS_ALERTS_TELEGRAM_API_URL": telegram,
        "TRADEROPS_ALERTS_RUNBOOK_BASE_URL": RUNBOOK_BASE,
    }
    cfg = render.render(env, out)
    doc = yaml.safe_load(cfg.read_text())

    def shorten(route: dict[str, Any]) -> None:
        for key, value in (
            ("group_wait", "1s"),
            ("group_interval", "2s"),
            ("repeat_interval", "1h"),
        ):
            if key in route:
                route[key] = value
        for child in route.get("routes", []):
            shorten(child)

    shorten(doc["route"])
    cfg.write_text(yaml.safe_dump(doc, sort_keys=False))
    return cfg


def prometheus_config(directory: Path, target: str, alertmanager: str) -> Path:
    rules_dir = directory / "rules"
    rules_dir.mkdir(parents=True)
    for path in rule_files():
        document = yaml.safe_load(path.read_text())
        for group in document.get("groups", []):
            group["interval"] = "1s"
        (rules_dir / path.name).write_text(yaml.safe_dump(document, sort_keys=False))
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules_dir / "*.yml")],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
        "scrape_configs": [{"job_name": "datahub", "static_configs": [{"targets": [target]}]}],
    }
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def test_alerts_reach_webhook_and_telegram_grouped_then_resolved(tmp_path: Path) -> None:
    prom_bin = require_binary("prometheus")
    am_bin = require_binary("prometheus-alertmanager")
    tg_reply = json.dumps(
        {"ok": True, "result": {"message_id": 1, "date": 0, "chat": {"id": CHAT, "type": "group"}}}
    ).encode()
    hook, telegram, exporter = Recorder(b"{}"), Recorder(tg_reply), Exporter()
    exporter.metrics = FIRING
    am_port, prom_port = free_port(), free_port()
    with serving(hook), serving(telegram), serving(exporter):
        cfg = alertmanager_config(tmp_path / "am", hook.url, telegram.url)
        am_args = [
            am_bin,
            f"--config.file={cfg}",
            f"--storage.path={tmp_path / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{am_port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ]
        target = f"127.0.0.1:{exporter.server_address[1]}"
        pcfg = prometheus_config(tmp_path / "prom", target, f"127.0.0.1:{am_port}")
        prom_args = [
            prom_bin,
            f"--config.file={pcfg}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
            f"--storage.tsdb.path={tmp_path / 'prom-data'}",
            "--rules.alert.resend-delay=1s",
            "--log.level=warn",
        ]
        with (
            process(am_args, tmp_path / "am.log", am_port),
            process(prom_args, tmp_path / "prom.log", prom_port),
        ):
            status = httpx.get(f"http://127.0.0.1:{am_port}/api/v2/status", timeout=5).json()
            assert "exchange-closed" in status["config"]["original"]

            def hooks(state: str) -> dict[str, list[dict[str, Any]]]:
                out: dict[str, list[dict[str, Any]]] = {}
                for body in hook.bodies():
                    msg = json.loads(body)
                    if msg["status"] == state:
                        out.setdefault(msg["receiver"], []).append(msg)
                return out

            def telegrams(marker: str) -> list[dict[str, Any]]:
                found = []
                for path, body in telegram.requests:
                    msg = json.loads(body)
                    assert path == f"/bot{TOKEN}/sendMessage", path
                    if msg["text"].startswith(marker):
                        found.append(msg)
                return found

            wait_until(lambda: set(hooks("firing")) == {"page", "notify"}, 40, "firing webhooks")
            wait_until(lambda: len(telegrams("[FIRING")) == 2, 20, "firing Telegram messages")
            time.sleep(3)  # more than a group interval: no second notification per route
            firing = hooks("firing")
            assert {k: len(v) for k, v in firing.items()} == {"page": 1, "notify": 1}
            page, notify = firing["page"][0], firing["notify"][0]
            assert [a["labels"]["alertname"] for a in page["alerts"]] == ["KillSwitchEngaged"]
            assert (
                page["alerts"][0]["annotations"]["runbook"] == "docs/RUNBOOK.md#killswitchengaged"
            )
            assert page["alerts"][0]["annotations"]["summary"].startswith("Kill switch engaged on")
            assert [a["labels"]["alertname"] for a in notify["alerts"]] == ["KairosJobFailed"]
            tg = telegrams("[FIRING")
            assert len(tg) == 2 and all(str(m["chat_id"]) == str(CHAT) for m in tg)
            tg_text = "\n".join(m["text"] for m in tg)
            assert "Kill switch engaged on" in tg_text
            assert f"Runbook: {RUNBOOK_BASE}docs/RUNBOOK.md#killswitchengaged" in tg_text
            assert "Kairos job momentum failed" in tg_text
            assert f"Runbook: {RUNBOOK_BASE}docs/RUNBOOK.md#kairosjobfailed" in tg_text

            exporter.metrics = RESOLVED
            wait_until(
                lambda: set(hooks("resolved")) == {"page", "notify"}, 40, "resolved webhooks"
            )
            wait_until(lambda: len(telegrams("[RESOLVED")) == 2, 20, "resolved Telegram messages")
            time.sleep(3)
            assert {k: len(v) for k, v in hooks("resolved").items()} == {"page": 1, "notify": 1}
            assert {k: len(v) for k, v in hooks("firing").items()} == {"page": 1, "notify": 1}
            assert len(telegrams("[RESOLVED")) == 2 and len(telegrams("[FIRING")) == 2
