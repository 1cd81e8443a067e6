"""Helpers over the committed Grafana dashboards and Prometheus rules, for tests.

``iter_panel_queries()`` yields every PromQL expression a dashboard sends (panel
targets and annotation queries) with Grafana's template variables replaced by values
Prometheus can run: ``$account``-style variables by ``.*`` (they are only used in
``=~`` matchers), ``$__rate_interval``/``$__interval`` by ``1m`` and ``$__range`` by
``1h``. Expressions that read recording rules (``traderops:...``) return data only
when Prometheus loads deployment/prometheus/rules.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD_DIR = ROOT / "grafana" / "dashboards"
PROVISIONING_DIR = ROOT / "grafana" / "provisioning"
PROMETHEUS_DIR = ROOT / "deployment" / "prometheus"
RULES_DIR = PROMETHEUS_DIR / "rules"

DATASOURCE = {"type": "prometheus", "uid": "prometheus"}

# Grafana's built-in interval variables and the values used outside Grafana.
BUILTIN_VARIABLES = {
    "__rate_interval": "1m",
    "__interval": "1m",
    "__range": "1h",
}
ANY_VALUE = ".*"
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")


def substitute(expr: str, values: dict[str, str] | None = None) -> str:
    """Replace Grafana variables: built-ins by fixed durations, the rest by ``.*``."""
    values = {**BUILTIN_VARIABLES, **(values or {})}

    def repl(match: re.Match[str]) -> str:
        name = next(g for g in match.groups() if g)
        return values.get(name, ANY_VALUE)

    return _VARIABLE.sub(repl, expr)


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARD_DIR.glob("*.json"))


@cache
def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def load_dashboards() -> dict[Path, dict[str, Any]]:
    return {path: _load(path) for path in dashboard_files()}


def iter_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows included, and the panels nested in collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def iter_raw_queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(panel title, expression) as written in the dashboard, variables unreplaced."""
    for panel in iter_panels(dashboard):
        for target in panel.get("targets", []):
            if target.get("expr"):
                yield panel.get("title", ""), target["expr"]
    for annotation in dashboard.get("annotations", {}).get("list", []):
        if annotation.get("expr"):
            yield f"annotation: {annotation.get('name', '')}", annotation["expr"]


def iter_panel_queries() -> Iterator[tuple[str, str, str]]:
    """(dashboard uid, panel title, runnable PromQL) for every query of every dashboard."""
    for dashboard in load_dashboards().values():
        for title, expr in iter_raw_queries(dashboard):
            yield dashboard["uid"], title, substitute(expr)


def iter_variable_queries() -> Iterator[tuple[str, str, str]]:
    """(dashboard uid, variable name, query) for query variables (label_values(...))."""
    for dashboard in load_dashboards().values():
        for var in dashboard.get("templating", {}).get("list", []):
            if var.get("type") != "query":
                continue
            query = var.get("query")
            if isinstance(query, dict):
                query = query.get("query", "")
            yield dashboard["uid"], var["name"], str(query or var.get("definition", ""))


# -- Prometheus rules ---------------------------------------------------------------------


def rule_files() -> list[Path]:
    return sorted(RULES_DIR.glob("*.yml"))


def iter_rules() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in rule_files():
        for group in yaml.safe_load(path.read_text()).get("groups", []):
            for rule in group.get("rules", []):
                yield path, rule


def recording_rule_names() -> set[str]:
    return {rule["record"] for _, rule in iter_rules() if "record" in rule}


def alert_names() -> set[str]:
    return {rule["alert"] for _, rule in iter_rules() if "alert" in rule}


# -- metric names in PromQL ------------------------------------------------------------------

_KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "offset", "bool", "atan2", "inf", "nan", "sum", "min", "max", "avg", "count", "stddev",
    "stdvar", "topk", "bottomk", "quantile", "count_values", "group",
}  # fmt: skip
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_BRACES = re.compile(r"\{[^{}]*\}")
_BRACKETS = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(
    r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE
)
_IDENT = re.compile(r"(?<![\w.:])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?")


def metric_names(expr: str) -> set[str]:
    """Metric names an expression selects (functions, keywords and labels left out)."""
    text = _STRING.sub('""', expr)
    text = _BRACES.sub("", text)
    text = _BRACKETS.sub("", text)
    text = _GROUPING.sub(" ", text)
    names = set()
    for match in _IDENT.finditer(text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in _KEYWORDS:
            continue
        names.add(name)
    return names


_LABEL_VALUES = re.compile(r"label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?\s*,")


def variable_metric_names(query: str) -> set[str]:
    """Metric named by a ``label_values(metric, label)`` variable query."""
    return {m.group(1) for m in _LABEL_VALUES.finditer(query)}


@cache
def exported_metric_names() -> frozenset[str]:
    """Every series name the services can export: app.observability.metrics via the
    default prometheus_client REGISTRY (with _total/_bucket/_sum/_count/_created)."""
    from prometheus_client import REGISTRY

    import app.observability.metrics  # noqa: F401  (registers the metrics)

    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("_sum", "_count", "_created", ""),
        "gauge": ("",),
        "info": ("_info",),
        "stateset": ("",),
        "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
        "unknown": ("",),
    }
    names: set[str] = set()
    for family in REGISTRY.collect():
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return frozenset(names)


def allowed_metric_names() -> set[str]:
    """Exported names, plus Prometheus' own `up` and `ALERTS`, plus recording rules."""
    return (
        set(exported_metric_names())
        | {"up", "ALERTS", "ALERTS_FOR_STATE"}
        | (recording_rule_names())
    )
