"""Structure checks of the Grafana dashboards and provisioning, and of the Prometheus rules.

PromQL syntax is checked by the real parser: every dashboard expression goes into one
temporary rule file that `promtool check rules` loads (promtool 2.42 has no expression
check command).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.dashboards import (
    DATASOURCE,
    PROMETHEUS_DIR,
    PROVISIONING_DIR,
    ROOT,
    alert_names,
    allowed_metric_names,
    exported_metric_names,
    iter_panel_queries,
    iter_panels,
    iter_raw_queries,
    iter_rules,
    iter_variable_queries,
    load_dashboards,
    metric_names,
    recording_rule_names,
    variable_metric_names,
)
from tests.servers import require_binary

EXPECTED_UIDS = {
    "traderops-latency",
    "traderops-risk",
    "traderops-trading",
    "traderops-journal-kairos",
    "traderops-health",
}
REQUIRED_ALERTS = {
    "WebhookLatencyHigh",
    "RiskCheckSlow",
    "DailyLossWarning",
    "DailyLossLimitReached",
    "KillSwitchEngaged",
    "CircuitBreakerOpen",
    "BrokerErrorRateHigh",
    "JournalBacklogGrowing",
    "JournalDeadLetters",
    "KairosJobFailed",
    "KairosRunMissed",
    "TargetDown",
    "NoQuotesDuringSession",
}
DASHBOARD_PATHS = {"/var/lib/grafana/dashboards", "/etc/grafana/dashboards"}

DASHBOARDS = load_dashboards()
DASHBOARD_IDS = [path.name for path in DASHBOARDS]


def test_generated_json_is_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "grafana" / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_expected_dashboards_with_stable_unique_uids() -> None:
    uids = [d["uid"] for d in DASHBOARDS.values()]
    assert len(uids) == len(set(uids))
    assert set(uids) == EXPECTED_UIDS
    titles = [d["title"] for d in DASHBOARDS.values()]
    assert len(titles) == len(set(titles))


@pytest.mark.parametrize("path", DASHBOARDS, ids=DASHBOARD_IDS)
def test_dashboard_top_level(path: Path) -> None:
    dash = DASHBOARDS[path]
    assert dash["schemaVersion"] == 41
    assert re.fullmatch(r"[a-z0-9-]{1,40}", dash["uid"])
    assert "trader-ops" in dash["tags"]
    assert dash["panels"], "no panels"


@pytest.mark.parametrize("path", DASHBOARDS, ids=DASHBOARD_IDS)
def test_panel_ids_unique_and_layout_sane(path: Path) -> None:
    panels = list(iter_panels(DASHBOARDS[path]))
    ids = [p["id"] for p in panels]
    assert all(isinstance(i, int) for i in ids)
    assert len(ids) == len(set(ids)), f"duplicate panel ids in {path.name}"
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        assert grid["h"] > 0 and grid["y"] >= 0, panel["title"]
        assert panel["title"], f"untitled panel {panel['id']}"
        if panel["type"] != "row":
            assert panel.get("targets"), f"panel without queries: {panel['title']}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=DASHBOARD_IDS)
def test_every_query_uses_the_provisioned_datasource(path: Path) -> None:
    dash = DASHBOARDS[path]
    for panel in iter_panels(dash):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
            assert target["expr"].strip(), panel["title"]
    for annotation in dash["annotations"]["list"]:
        assert annotation["datasource"] == DATASOURCE, annotation["name"]
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            assert var["datasource"] == DATASOURCE, var["name"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=DASHBOARD_IDS)
def test_firing_alerts_are_annotations(path: Path) -> None:
    exprs = [a.get("expr", "") for a in DASHBOARDS[path]["annotations"]["list"]]
    assert any(e.startswith("ALERTS{") and 'alertstate="firing"' in e for e in exprs)


def test_template_variables() -> None:
    by_uid = {d["uid"]: {v["name"] for v in d["templating"]["list"]} for d in DASHBOARDS.values()}
    assert "account" in by_uid["traderops-risk"]
    assert "strategy" in by_uid["traderops-journal-kairos"]
    assert "strategy" in by_uid["traderops-trading"]
    # A variable that is declared is used, and a used variable is declared.
    for dash in DASHBOARDS.values():
        declared = {v["name"] for v in dash["templating"]["list"]}
        text = " ".join(expr for _, expr in iter_raw_queries(dash))
        used = set(re.findall(r"\$(\w+)", text)) - {"__rate_interval", "__interval", "__range"}
        assert used == declared, dash["uid"]


def test_datasource_provisioning_matches_dashboards() -> None:
    doc = yaml.safe_load((PROVISIONING_DIR / "datasources" / "prometheus.yaml").read_text())
    assert doc["apiVersion"] == 1
    [ds] = doc["datasources"]
    assert ds["type"] == DATASOURCE["type"]
    assert ds["uid"] == DATASOURCE["uid"]
    assert ds["url"] == "http://prometheus:9090"
    assert ds["access"] == "proxy"
    assert ds["isDefault"] is True


def test_dashboard_provider() -> None:
    doc = yaml.safe_load((PROVISIONING_DIR / "dashboards" / "trader-ops.yaml").read_text())
    assert doc["apiVersion"] == 1
    [provider] = doc["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] in DASHBOARD_PATHS


def test_iter_panel_queries_substitutes_every_variable() -> None:
    queries = list(iter_panel_queries())
    assert {uid for uid, _, _ in queries} == EXPECTED_UIDS
    for uid, title, expr in queries:
        assert "$" not in expr, (uid, title, expr)
        assert "[[" not in expr, (uid, title, expr)


def test_every_dashboard_expression_parses(tmp_path: Path) -> None:
    """All expressions in one rule file, checked once by promtool's PromQL parser."""
    promtool = require_binary("promtool")
    exprs = [expr for _, _, expr in iter_panel_queries()]
    rules = [{"record": f"dashboard_query_{i}", "expr": expr} for i, expr in enumerate(exprs)]
    rule_file = tmp_path / "dashboard-queries.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(rule_file)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(rules)} rules found" in result.stdout


def test_metric_name_extraction() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (le, broker) (rate(traderops_order_latency_seconds_bucket"
        '{broker=~"$broker", status="x"}[5m]))) > 0.5 and on () up offset 15m'
        " unless traderops:webhook_latency_seconds:p99_5m"
    )
    assert metric_names(expr) == {
        "traderops_order_latency_seconds_bucket",
        "up",
        "traderops:webhook_latency_seconds:p99_5m",
    }
    assert "traderops_orders_total" in exported_metric_names()
    assert "traderops_webhook_latency_seconds_bucket" in exported_metric_names()


def test_every_metric_name_exists() -> None:
    allowed = allowed_metric_names()
    unknown: dict[str, set[str]] = {}
    for uid, title, expr in iter_panel_queries():
        for name in metric_names(expr) - allowed:
            unknown.setdefault(name, set()).add(f"{uid}: {title}")
    for uid, var, query in iter_variable_queries():
        names = variable_metric_names(query)
        assert names, f"{uid} ${var}: not a label_values(metric, label) query"
        for name in names - allowed:
            unknown.setdefault(name, set()).add(f"{uid}: ${var}")
    for path, rule in iter_rules():
        for name in metric_names(rule["expr"]) - allowed:
            unknown.setdefault(name, set()).add(
                f"{path.name}: {rule.get('alert') or rule['record']}"
            )
    assert not unknown, f"metrics not defined in app/observability/metrics.py: {unknown}"


def test_rule_test_inputs_use_real_metric_names() -> None:
    allowed = allowed_metric_names()
    for path in sorted((PROMETHEUS_DIR / "tests").glob("*.yml")):
        for case in yaml.safe_load(path.read_text())["tests"]:
            for series in case.get("input_series", []):
                name = series["series"].split("{", 1)[0].strip()
                assert name in allowed, f"{path.name}: {name}"


def _anchors(markdown: str) -> set[str]:
    anchors = set()
    for line in markdown.splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


def test_alerts_have_severity_annotations_and_runbook() -> None:
    anchors = _anchors((ROOT / "docs" / "RUNBOOK.md").read_text())
    names = []
    for path, rule in iter_rules():
        if "alert" not in rule:
            continue
        name = rule["alert"]
        names.append(name)
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        annotations = rule["annotations"]
        for key in ("summary", "description", "runbook"):
            assert str(annotations.get(key, "")).strip(), f"{path.name} {name}: no {key}"
        doc, _, anchor = annotations["runbook"].partition("#")
        assert doc == "docs/RUNBOOK.md", name
        assert anchor in anchors, f"{name}: no section #{anchor} in docs/RUNBOOK.md"
    assert len(names) == len(set(names)), "duplicate alert names"
    assert set(names) >= REQUIRED_ALERTS, REQUIRED_ALERTS - set(names)


def test_recording_rule_names_follow_convention() -> None:
    names = recording_rule_names()
    assert names
    for name in names:
        assert re.fullmatch(r"traderops:[a-z0-9_]+:[a-z0-9_]+", name), name


def test_every_alert_has_a_firing_and_a_quiet_test_case() -> None:
    fires: set[str] = set()
    quiet: set[str] = set()
    for path in sorted((PROMETHEUS_DIR / "tests").glob("*.yml")):
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    alerts = alert_names()
    assert alerts - fires == set(), "alerts never shown firing"
    assert alerts - quiet == set(), "alerts never shown quiet"
