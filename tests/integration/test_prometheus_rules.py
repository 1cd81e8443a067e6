"""The Prometheus configuration and rules against the real promtool and prometheus.

- scripts/test-observability.sh: promtool check config / check rules / test rules.
- The same script fails when a rule no longer matches its unit tests.
- A real Prometheus loads deployment/prometheus/prometheus.yml with every rule group,
  and answers every dashboard query without an error.
Under CI (CI=true) a missing promtool/prometheus is a failure (tests.servers).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from app.embedded import stop_process
from tests.dashboards import PROMETHEUS_DIR, ROOT, iter_panel_queries, rule_files
from tests.servers import free_port, require_binary, wait_for_port

pytestmark = pytest.mark.integration

SCRIPT = ROOT / "scripts" / "test-observability.sh"


def run_script(env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_observability_script_passes() -> None:
    require_binary("promtool")
    require_binary("amtool")
    result = run_script()
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "FAILED" not in output
    assert "test-observability: OK" in result.stdout


def test_script_fails_when_a_rule_breaks_its_tests(tmp_path: Path) -> None:
    require_binary("promtool")
    copy = tmp_path / "prometheus"
    shutil.copytree(PROMETHEUS_DIR, copy)
    latency = copy / "rules" / "latency.yml"
    text = latency.read_text()
    assert "> 0.5" in text
    latency.write_text(text.replace("> 0.5", "> 1.0"))  # 995 ms no longer alerts
    result = run_script({"PROM_DIR": str(copy)})
    assert result.returncode != 0
    assert "WebhookLatencyHigh" in result.stdout + result.stderr


def test_script_fails_on_invalid_rules(tmp_path: Path) -> None:
    require_binary("promtool")
    copy = tmp_path / "prometheus"
    shutil.copytree(PROMETHEUS_DIR, copy)
    (copy / "rules" / "broken.yml").write_text(
        "groups:\n  - name: broken\n    rules:\n      - alert: Broken\n        expr: sum(\n"
    )
    result = run_script({"PROM_DIR": str(copy)})
    assert result.returncode != 0


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prometheus on a free port with the repository's config and rules."""
    binary = require_binary("prometheus")
    port = free_port()
    data = tmp_path_factory.mktemp("prometheus-data")
    log = (data / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={PROMETHEUS_DIR / 'prometheus.yml'}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--storage.tsdb.path={data}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_port(port, timeout=30, proc=proc)
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/-/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("prometheus not ready")
            time.sleep(0.2)
        yield base
    finally:
        stop_process(proc, timeout=15)
        log.close()


def test_prometheus_loads_every_rule_group(prometheus: str) -> None:
    expected: dict[str, set[str]] = {}
    for path in rule_files():
        for group in yaml.safe_load(path.read_text())["groups"]:
            expected[group["name"]] = {r.get("alert") or r["record"] for r in group["rules"]}
    response = httpx.get(f"{prometheus}/api/v1/rules", timeout=10)
    response.raise_for_status()
    groups = response.json()["data"]["groups"]
    loaded = {g["name"]: {r["name"] for r in g["rules"]} for g in groups}
    assert loaded == expected


def test_prometheus_scrape_config(prometheus: str) -> None:
    response = httpx.get(f"{prometheus}/api/v1/status/config", timeout=10)
    response.raise_for_status()
    config = yaml.safe_load(response.json()["data"]["yaml"])
    assert config["global"]["scrape_interval"] == "15s"
    assert config["global"]["external_labels"]
    targets = {
        job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]]
        for job in config["scrape_configs"]
    }
    assert targets["datahub"] == ["datahub:8000"]
    assert targets["kairos"] == ["kairos:8001"]
    assert targets["journal"] == ["journal:8002"]
    assert "prometheus" in targets


def test_every_dashboard_query_runs(prometheus: str) -> None:
    """No data here (targets are unreachable), but every query must evaluate."""
    failures = []
    with httpx.Client(base_url=prometheus, timeout=10) as client:
        for uid, title, expr in iter_panel_queries():
            response = client.post("/api/v1/query", data={"query": expr})
            body = response.json()
            if response.status_code != 200 or body.get("status") != "success":
                failures.append((uid, title, body.get("error")))
    assert not failures, failures
