#!/usr/bin/env python3
"""Generate the trader-ops Grafana dashboards (grafana/dashboards/*.json).

Standard library only. The JSON output is committed; edit this script, then run

    python3 grafana/generate.py          # rewrite grafana/dashboards/*.json
    python3 grafana/generate.py --check  # exit 1 if the committed JSON is stale

Conventions: every target uses the provisioned Prometheus datasource (uid
"prometheus"); panel ids are unique per dashboard and dashboard uids never change
(links and bookmarks rely on them); time series panels use $__rate_interval; gauges
exported by several processes are aggregated (max/sum) because every process
exports every unlabelled metric. Kairos' own `job` label is stored as `exported_job`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

OUT_DIR = Path(__file__).resolve().parent / "dashboards"
DS = {"type": "prometheus", "uid": "prometheus"}
SCHEMA_VERSION = 41
WIDTH = 24

Panel = dict[str, Any]


# -- building blocks ----------------------------------------------------------------


def target(
    expr: str, legend: str = "", ref: str = "A", *, instant: bool = False, fmt: str = "time_series"
) -> dict[str, Any]:
    t: dict[str, Any] = {
        "datasource": dict(DS),
        "editorMode": "code",
        "expr": expr,
        "legendFormat": legend or "__auto",
        "range": not instant,
        "instant": instant,
        "refId": ref,
    }
    if fmt != "time_series":
        t["format"] = fmt
    return t


def targets(
    *pairs: tuple[str, str], instant: bool = False, fmt: str = "time_series"
) -> list[dict[str, Any]]:
    return [
        target(expr, legend, chr(ord("A") + i), instant=instant, fmt=fmt)
        for i, (expr, legend) in enumerate(pairs)
    ]


def thresholds(*steps: tuple[float | None, str]) -> dict[str, Any]:
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for v, c in steps]}


GREEN_ONLY = thresholds((None, "green"))


def value_mappings(mapping: dict[int, tuple[str, str]]) -> list[dict[str, Any]]:
    return [
        {
            "type": "value",
            "options": {
                str(value): {"text": text, "color": color, "index": i}
                for i, (value, (text, color)) in enumerate(sorted(mapping.items()))
            },
        }
    ]


def timeseries(
    title: str,
    description: str,
    tgts: list[dict[str, Any]],
    *,
    unit: str = "short",
    stack: bool = False,
    bars: bool = False,
    th: dict[str, Any] | None = None,
    show_thresholds: bool = False,
    minimum: float | None = None,
    w: int = 12,
    h: int = 8,
) -> Panel:
    custom: dict[str, Any] = {
        "drawStyle": "bars" if bars else "line",
        "lineWidth": 1,
        "fillOpacity": 80 if bars else 10,
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"mode": "normal" if stack else "none", "group": "A"},
        "thresholdsStyle": {"mode": "line+area" if show_thresholds else "off"},
        "axisSoftMin": minimum,
    }
    if minimum is None:
        del custom["axisSoftMin"]
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": dict(DS),
        "targets": tgts,
        "fieldConfig": {
            "defaults": {"unit": unit, "custom": custom, "thresholds": th or GREEN_ONLY},
            "overrides": [],
        },
        "options": {
            "legend": {
                "displayMode": "table",
                "placement": "bottom",
                "showLegend": True,
                "calcs": ["lastNotNull", "max"],
            },
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "_size": (w, h),
    }


def stat(
    title: str,
    description: str,
    tgts: list[dict[str, Any]],
    *,
    unit: str = "short",
    th: dict[str, Any] | None = None,
    mappings: list[dict[str, Any]] | None = None,
    decimals: int | None = None,
    graph: bool = False,
    w: int = 6,
    h: int = 5,
) -> Panel:
    defaults: dict[str, Any] = {
        "unit": unit,
        "thresholds": th or GREEN_ONLY,
        "mappings": mappings or [],
        "color": {"mode": "thresholds"},
    }
    if decimals is not None:
        defaults["decimals"] = decimals
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": dict(DS),
        "targets": tgts,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "background",
            "graphMode": "area" if graph else "none",
            "justifyMode": "auto",
            "orientation": "auto",
            "textMode": "auto",
            "wideLayout": True,
            "showPercentChange": False,
        },
        "_size": (w, h),
    }


def gauge(
    title: str,
    description: str,
    tgts: list[dict[str, Any]],
    *,
    unit: str,
    th: dict[str, Any],
    minimum: float = 0,
    maximum: float = 1,
    w: int = 6,
    h: int = 5,
) -> Panel:
    return {
        "type": "gauge",
        "title": title,
        "description": description,
        "datasource": dict(DS),
        "targets": tgts,
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "min": minimum,
                "max": maximum,
                "thresholds": th,
                "color": {"mode": "thresholds"},
            },
            "overrides": [],
        },
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "showThresholdLabels": False,
            "showThresholdMarkers": True,
        },
        "_size": (w, h),
    }


def state_timeline(
    title: str,
    description: str,
    tgts: list[dict[str, Any]],
    *,
    mappings: list[dict[str, Any]],
    th: dict[str, Any],
    w: int = 12,
    h: int = 6,
) -> Panel:
    return {
        "type": "state-timeline",
        "title": title,
        "description": description,
        "datasource": dict(DS),
        "targets": tgts,
        "fieldConfig": {
            "defaults": {
                "mappings": mappings,
                "thresholds": th,
                "color": {"mode": "thresholds"},
                "custom": {"fillOpacity": 80, "lineWidth": 0},
            },
            "overrides": [],
        },
        "options": {
            "mergeValues": True,
            "showValue": "auto",
            "alignValue": "left",
            "rowHeight": 0.9,
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "single", "sort": "none"},
        },
        "_size": (w, h),
    }


def table(
    title: str,
    description: str,
    tgts: list[dict[str, Any]],
    *,
    unit: str = "short",
    exclude: tuple[str, ...] = ("Time",),
    units: dict[str, str] | None = None,
    w: int = 12,
    h: int = 8,
) -> Panel:
    return {
        "type": "table",
        "title": title,
        "description": description,
        "datasource": dict(DS),
        "targets": tgts,
        "fieldConfig": {
            "defaults": {"unit": unit, "thresholds": GREEN_ONLY, "custom": {"align": "auto"}},
            "overrides": [
                {
                    "matcher": {"id": "byName", "options": field},
                    "properties": [{"id": "unit", "value": field_unit}],
                }
                for field, field_unit in (units or {}).items()
            ],
        },
        "options": {"showHeader": True, "cellHeight": "sm", "footer": {"show": False}},
        "transformations": [
            {"id": "merge", "options": {}},
            {"id": "organize", "options": {"excludeByName": dict.fromkeys(exclude, True)}},
        ],
        "_size": (w, h),
    }


def heatmap(
    title: str,
    description: str,
    tgts: list[dict[str, Any]],
    *,
    unit: str = "s",
    w: int = 12,
    h: int = 8,
) -> Panel:
    return {
        "type": "heatmap",
        "title": title,
        "description": description,
        "datasource": dict(DS),
        "targets": tgts,
        "fieldConfig": {
            "defaults": {"custom": {"scaleDistribution": {"type": "linear"}}},
            "overrides": [],
        },
        "options": {
            "calculate": False,
            "cellGap": 1,
            "color": {
                "mode": "scheme",
                "scheme": "Oranges",
                "scale": "exponential",
                "exponent": 0.5,
                "steps": 64,
                "fill": "dark-orange",
                "reverse": False,
            },
            "yAxis": {"axisPlacement": "left", "unit": unit},
            "rowsFrame": {"layout": "auto"},
            "tooltip": {"mode": "single", "yHistogram": True},
            "legend": {"show": True},
        },
        "_size": (w, h),
    }


def row(title: str) -> Panel:
    return {"type": "row", "title": title, "collapsed": False, "panels": [], "_size": (WIDTH, 1)}


def layout(panels: list[Panel]) -> list[Panel]:
    """Assign ids and a left-to-right, top-to-bottom grid position to every panel."""
    x = y = row_h = 0
    out = []
    for pid, panel in enumerate(panels, start=1):
        w, h = panel.pop("_size")
        if panel["type"] == "row" or x + w > WIDTH:
            y += row_h
            x = row_h = 0
        panel = {"id": pid, "gridPos": {"h": h, "w": w, "x": x, "y": y}, **panel}
        out.append(panel)
        if panel["type"] == "row":
            y += 1
        else:
            x += w
            row_h = max(row_h, h)
    return out


def query_var(name: str, label: str, query: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "description": description,
        "type": "query",
        "datasource": dict(DS),
        "definition": query,
        "query": {
            "qryType": 1,
            "query": query,
            "refId": "PrometheusVariableQueryEditor-VariableQuery",
        },
        "refresh": 2,
        "regex": "",
        "sort": 1,
        "multi": True,
        "includeAll": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [],
        "hide": 0,
    }


def alerts_annotation(alert_regex: str = ".+") -> dict[str, Any]:
    """Firing alerts (the ALERTS series) as annotation regions."""
    return {
        "name": "Firing alerts",
        "datasource": dict(DS),
        "enable": True,
        "hide": False,
        "iconColor": "red",
        "expr": f'ALERTS{{alertstate="firing", alertname=~"{alert_regex}"}}',
        "step": "60s",
        "titleFormat": "{{alertname}}",
        "textFormat": "severity={{severity}} {{instance}} {{account}} {{broker}} {{exported_job}}",
        "tagKeys": "alertname,severity",
        "useValueForTime": False,
    }


def dashboard(
    uid: str,
    title: str,
    description: str,
    panels: list[Panel],
    *,
    variables: list[dict[str, Any]] | None = None,
    alert_regex: str = ".+",
    time_from: str = "now-6h",
) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["trader-ops"],
        "timezone": "utc",
        "editable": False,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": "30s",
        "time": {"from": time_from, "to": "now"},
        "timepicker": {},
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "weekStart": "",
        "links": [
            {
                "title": "trader-ops",
                "type": "dashboards",
                "tags": ["trader-ops"],
                "asDropdown": True,
                "includeVars": True,
                "keepTime": True,
                "icon": "external link",
                "targetBlank": False,
                "tooltip": "",
                "url": "",
            },
        ],
        "annotations": {"list": [alerts_annotation(alert_regex)]},
        "templating": {"list": variables or []},
        "panels": layout(panels),
    }


# -- expressions -------------------------------------------------------------------------

QUANTILES = (("0.5", "p50"), ("0.95", "p95"), ("0.99", "p99"))


def quantiles(
    metric: str, by: str = "", selector: str = "", legend_prefix: str = ""
) -> list[dict[str, Any]]:
    grouping = f"le, {by}" if by else "le"
    return targets(
        *(
            (
                f"histogram_quantile({q}, sum by ({grouping}) "
                f"(rate({metric}_bucket{selector}[$__rate_interval])))",
                f"{legend_prefix}{name}",
            )
            for q, name in QUANTILES
        )
    )


def error_budget(metric: str, le: str, objective: float, window: str) -> str:
    """Share of the error budget left over `window` (1 = untouched, < 0 = overspent)."""
    return (
        f'1 - (1 - sum(increase({metric}_bucket{{le="{le}"}}[{window}]))'
        f" / sum(increase({metric}_count[{window}]))) / {1 - objective:.2g}"
    )


def burn_rate(metric: str, le: str, objective: float, window: str) -> str:
    """How fast the budget burns: 1 = exactly the budget over the SLO period."""
    return (
        f'(1 - sum(rate({metric}_bucket{{le="{le}"}}[{window}]))'
        f" / sum(rate({metric}_count[{window}]))) / {1 - objective:.2g}"
    )


KILL_SWITCH = value_mappings(
    {0: ("ACTIVE", "green"), 1: ("REDUCING", "orange"), 2: ("HALTED", "red")}
)
BREAKER = value_mappings({0: ("CLOSED", "green"), 1: ("OPEN", "red")})
UP = value_mappings({0: ("DOWN", "red"), 1: ("UP", "green")})
STATE_TH = thresholds((None, "green"), (1, "orange"), (2, "red"))
BUDGET_TH = thresholds((None, "red"), (0.25, "orange"), (0.5, "green"))

ACCOUNT = query_var(
    "account",
    "Account",
    "label_values(traderops_daily_pnl_dollars, account)",
    "Trading account (the `account` label on P&L, exposure and positions).",
)
BROKER = query_var(
    "broker",
    "Broker",
    "label_values(traderops_orders_total, broker)",
    "Broker connector (paper, tradier).",
)
STRATEGY = query_var(
    "strategy",
    "Strategy",
    "label_values(traderops_kairos_runs_total, exported_job)",
    "Kairos strategy job (the metric's `job` label, stored as `exported_job`). No other "
    "metric carries a strategy label yet.",
)


# -- dashboards ----------------------------------------------------------------------------


def latency() -> dict[str, Any]:
    wh, rk = "traderops_webhook_latency_seconds", "traderops_risk_check_seconds"
    panels = [
        row("SLOs"),
        stat(
            "Webhook p99 (5m)",
            "Receipt to decision answered, p99 over 5 minutes (recording rule). SLO: 500 ms.",
            targets(("traderops:webhook_latency_seconds:p99_5m", "p99")),
            unit="s",
            th=thresholds((None, "green"), (0.25, "orange"), (0.5, "red")),
        ),
        stat(
            "Webhook error budget left (30d)",
            "SLO: 99% of webhooks answered within 500 ms over 30 days. 100% = budget "
            "untouched; below 0 = SLO missed.",
            targets((error_budget(wh, "0.5", 0.99, "30d"), "budget")),
            unit="percentunit",
            th=BUDGET_TH,
            decimals=1,
        ),
        stat(
            "Risk check p99 (5m)",
            "Full pre-trade risk evaluation, p99 over 5 minutes (recording rule). SLO: 1 ms.",
            targets(("traderops:risk_check_seconds:p99_5m", "p99")),
            unit="s",
            th=thresholds((None, "green"), (0.0005, "orange"), (0.001, "red")),
        ),
        stat(
            "Risk check error budget left (30d)",
            "SLO: 99% of risk evaluations within 1 ms over 30 days.",
            targets((error_budget(rk, "0.001", 0.99, "30d"), "budget")),
            unit="percentunit",
            th=BUDGET_TH,
            decimals=1,
        ),
        timeseries(
            "Webhook SLO burn rate",
            "Error-budget burn rate over 1 h and 6 h windows. 1 spends exactly the "
            "30-day budget; 14.4 over 1 h spends 2% of it in an hour (page).",
            targets(
                (burn_rate(wh, "0.5", 0.99, "1h"), "1h"), (burn_rate(wh, "0.5", 0.99, "6h"), "6h")
            ),
            th=thresholds((None, "green"), (1, "orange"), (14.4, "red")),
            show_thresholds=True,
            minimum=0,
        ),
        timeseries(
            "Risk check SLO burn rate",
            "Same as the webhook burn rate, for the 1 ms risk-check objective.",
            targets(
                (burn_rate(rk, "0.001", 0.99, "1h"), "1h"),
                (burn_rate(rk, "0.001", 0.99, "6h"), "6h"),
            ),
            th=thresholds((None, "green"), (1, "orange"), (14.4, "red")),
            show_thresholds=True,
            minimum=0,
        ),
        row("Latency per stage (p50 / p95 / p99)"),
        timeseries(
            "Webhook: receipt to decision",
            "traderops_webhook_latency_seconds. Threshold: the 500 ms SLO.",
            quantiles(wh),
            unit="s",
            th=thresholds((None, "green"), (0.5, "red")),
            show_thresholds=True,
        ),
        timeseries(
            "Risk check",
            "traderops_risk_check_seconds. Threshold: the 1 ms SLO.",
            quantiles(rk),
            unit="s",
            th=thresholds((None, "green"), (0.001, "red")),
            show_thresholds=True,
        ),
        timeseries(
            "Broker order round trip",
            "traderops_order_latency_seconds per broker.",
            quantiles(
                "traderops_order_latency_seconds", "broker", '{broker=~"$broker"}', "{{broker}} "
            ),
            unit="s",
        ),
        timeseries(
            "Market data feed requests",
            "traderops_feed_request_seconds per feed and operation.",
            quantiles("traderops_feed_request_seconds", "feed, op", "", "{{feed}} {{op}} "),
            unit="s",
        ),
        timeseries(
            "Journal sync: fill to TradeNote",
            "traderops_journal_sync_seconds.",
            quantiles("traderops_journal_sync_seconds"),
            unit="s",
        ),
        timeseries(
            "Kairos job run",
            "traderops_kairos_run_seconds per strategy job.",
            quantiles(
                "traderops_kairos_run_seconds",
                "exported_job",
                '{exported_job=~"$strategy"}',
                "{{exported_job}} ",
            ),
            unit="s",
        ),
        timeseries(
            "HTTP requests p99 by route",
            "traderops_http_request_seconds.",
            targets(
                (
                    "histogram_quantile(0.99, sum by (le, route) "
                    "(rate(traderops_http_request_seconds_bucket[$__rate_interval])))",
                    "{{route}}",
                )
            ),
            unit="s",
        ),
        heatmap(
            "Webhook latency distribution",
            "Webhooks per latency bucket.",
            [
                target(
                    f"sum by (le) (increase({wh}_bucket[$__rate_interval]))",
                    "{{le}}",
                    fmt="heatmap",
                )
            ],
        ),
    ]
    return dashboard(
        "traderops-latency",
        "trader-ops / Latency SLOs",
        "Latency per stage and the webhook and risk-check SLOs.",
        panels,
        variables=[BROKER, STRATEGY],
        alert_regex="WebhookLatencyHigh|RiskCheckSlow",
    )


def risk() -> dict[str, Any]:
    acct = '{account=~"$account"}'
    pnl = f"min by (account) (traderops_daily_pnl_dollars{acct})"
    limit = f"max by (account) (traderops_daily_loss_limit_dollars{acct} > 0)"
    panels = [
        row("State"),
        stat(
            "Kill switch",
            "ACTIVE: trading; REDUCING: only exposure-reducing orders; HALTED: every order denied.",
            targets(("max(traderops_kill_switch_engaged)", "")),
            mappings=KILL_SWITCH,
            th=STATE_TH,
        ),
        stat(
            "Circuit breaker",
            "Opens on broker error rate or loss velocity; new orders are denied while open.",
            targets(("max(traderops_circuit_breaker_open)", "")),
            mappings=BREAKER,
            th=thresholds((None, "green"), (1, "red")),
        ),
        stat(
            "Daily P&L",
            "Realised + unrealised P&L today per account.",
            targets((pnl, "{{account}}")),
            unit="currencyUSD",
            th=thresholds((None, "red"), (0, "green")),
            graph=True,
        ),
        gauge(
            "Daily loss limit used",
            "Loss today as a share of the daily loss limit. "
            "Alerts at 80% (warning) and 100% (critical).",
            targets((f"clamp_min(-{pnl} / on (account) {limit}, 0)", "{{account}}")),
            unit="percentunit",
            th=thresholds((None, "green"), (0.8, "orange"), (1, "red")),
            maximum=1.2,
        ),
        row("P&L and exposure"),
        timeseries(
            "Daily P&L vs loss limit",
            "P&L today, the 80% warning line and the loss limit (negative: a loss).",
            targets(
                (pnl, "{{account}} P&L"),
                (f"-0.8 * {limit}", "{{account}} 80% of limit"),
                (f"-1 * {limit}", "{{account}} loss limit"),
            ),
            unit="currencyUSD",
            w=24,
        ),
        timeseries(
            "Gross exposure",
            "traderops_exposure_dollars per account.",
            targets((f"max by (account) (traderops_exposure_dollars{acct})", "{{account}}")),
            unit="currencyUSD",
        ),
        timeseries(
            "Open positions",
            "traderops_open_positions per account.",
            targets((f"max by (account) (traderops_open_positions{acct})", "{{account}}")),
            minimum=0,
        ),
        row("Risk engine"),
        timeseries(
            "Risk denials by check",
            "Orders denied per second, by the check that denied them.",
            targets(
                (
                    "sum by (check) (rate(traderops_risk_denials_total[$__rate_interval]))",
                    "{{check}}",
                )
            ),
            unit="reqps",
            stack=True,
        ),
        table(
            "Denials by check (time range)",
            "Denials over the dashboard's time range.",
            targets(
                (
                    "sort_desc(sum by (check) (increase(traderops_risk_denials_total[$__range])))",
                    "{{check}}",
                ),
                instant=True,
                fmt="table",
            ),
        ),
        state_timeline(
            "Kill switch and circuit breaker",
            "History of both safety states (0 = trading normally).",
            targets(
                ("max(traderops_kill_switch_engaged)", "kill switch"),
                ("max(traderops_circuit_breaker_open)", "circuit breaker"),
            ),
            mappings=value_mappings(
                {
                    0: ("ACTIVE / CLOSED", "green"),
                    1: ("REDUCING / OPEN", "orange"),
                    2: ("HALTED", "red"),
                }
            ),
            th=STATE_TH,
        ),
        timeseries(
            "Risk check latency",
            "p99 of the full pre-trade evaluation (SLO 1 ms).",
            targets(
                (
                    "histogram_quantile(0.99, sum by (le) "
                    "(rate(traderops_risk_check_seconds_bucket[$__rate_interval])))",
                    "p99",
                )
            ),
            unit="s",
            th=thresholds((None, "green"), (0.001, "red")),
            show_thresholds=True,
        ),
    ]
    return dashboard(
        "traderops-risk",
        "trader-ops / Risk and P&L",
        "Daily P&L against the loss limit, exposure, positions, risk denials, "
        "kill switch and circuit breaker.",
        panels,
        variables=[ACCOUNT],
        alert_regex="DailyLoss.*|KillSwitchEngaged|CircuitBreakerOpen|RiskCheckSlow",
    )


def trading() -> dict[str, Any]:
    brk = '{broker=~"$broker"}'
    panels = [
        row("Totals over the time range"),
        stat(
            "Orders submitted",
            "Order transitions to `submitted` in the time range.",
            targets(
                (
                    'sum(increase(traderops_orders_total{broker=~"$broker", status="submitted"}[$__range]))',
                    "",
                )
            ),
            decimals=0,
        ),
        stat(
            "Fills",
            "Fills in the time range.",
            targets((f"sum(increase(traderops_fills_total{brk}[$__range]))", "")),
            decimals=0,
        ),
        stat(
            "Rejects",
            "Orders rejected (by the broker) in the time range.",
            targets(
                (
                    'sum(increase(traderops_orders_total{broker=~"$broker", status="rejected"}[$__range]))',
                    "",
                )
            ),
            decimals=0,
            th=thresholds((None, "green"), (1, "orange")),
        ),
        stat(
            "Broker errors",
            "Failed broker calls in the time range.",
            targets((f"sum(increase(traderops_broker_errors_total{brk}[$__range]))", "")),
            decimals=0,
            th=thresholds((None, "green"), (1, "red")),
        ),
        row("Orders"),
        timeseries(
            "Order transitions by broker and status",
            "traderops_orders_total: "
            "status transitions per second (new, submitted, filled, rejected, ...).",
            targets(
                (
                    f"sum by (broker, status) (rate(traderops_orders_total{brk}[$__rate_interval]))",
                    "{{broker}} {{status}}",
                )
            ),
            unit="reqps",
            stack=True,
        ),
        timeseries(
            "Fills by broker",
            "traderops_fills_total per second.",
            targets(
                (
                    f"sum by (broker) (rate(traderops_fills_total{brk}[$__rate_interval]))",
                    "{{broker}}",
                )
            ),
            unit="reqps",
        ),
        timeseries(
            "Rejects and unknown outcomes",
            "Rejected orders, and orders whose broker answer is unknown (to reconcile).",
            targets(
                (
                    'sum by (broker, status) (rate(traderops_orders_total{broker=~"$broker", '
                    'status=~"rejected|unknown"}[$__rate_interval]))',
                    "{{broker}} {{status}}",
                )
            ),
            unit="reqps",
        ),
        timeseries(
            "Broker order round trip p99",
            "traderops_order_latency_seconds.",
            targets(
                (
                    "histogram_quantile(0.99, sum by (le, broker) "
                    f"(rate(traderops_order_latency_seconds_bucket{brk}[$__rate_interval])))",
                    "{{broker}}",
                )
            ),
            unit="s",
        ),
        row("Broker health"),
        timeseries(
            "Broker errors by operation",
            "traderops_broker_errors_total per second.",
            targets(
                (
                    f"sum by (broker, op) (rate(traderops_broker_errors_total{brk}[$__rate_interval]))",
                    "{{broker}} {{op}}",
                )
            ),
            unit="reqps",
        ),
        timeseries(
            "Broker error ratio",
            "Broker errors per order transition over 10 "
            "minutes, as in the BrokerErrorRateHigh alert (threshold 10%).",
            targets(
                (
                    f"sum by (broker) (rate(traderops_broker_errors_total{brk}[10m])) / "
                    f"sum by (broker) (rate(traderops_orders_total{brk}[10m]))",
                    "{{broker}}",
                )
            ),
            unit="percentunit",
            th=thresholds((None, "green"), (0.1, "red")),
            show_thresholds=True,
            minimum=0,
        ),
        row("Signals"),
        timeseries(
            "Webhook alerts by outcome",
            "traderops_webhook_alerts_total: TradingView and Kairos alerts by decision.",
            targets(
                (
                    "sum by (outcome) (rate(traderops_webhook_alerts_total[$__rate_interval]))",
                    "{{outcome}}",
                )
            ),
            unit="reqps",
            stack=True,
        ),
        timeseries(
            "Kairos signals by strategy and action",
            "traderops_kairos_signals_total.",
            targets(
                (
                    "sum by (exported_job, action) (rate(traderops_kairos_signals_total"
                    '{exported_job=~"$strategy"}[$__rate_interval]))',
                    "{{exported_job}} {{action}}",
                )
            ),
            unit="reqps",
        ),
    ]
    return dashboard(
        "traderops-trading",
        "trader-ops / Trading activity",
        "Orders by broker and status, fills, rejects, broker errors and the "
        "signals that caused them.",
        panels,
        variables=[BROKER, STRATEGY],
        alert_regex="BrokerErrorRateHigh|KillSwitchEngaged|CircuitBreakerOpen",
    )


def journal_kairos() -> dict[str, Any]:
    strat = '{exported_job=~"$strategy"}'
    panels = [
        row("Journal (TradeNote sync)"),
        stat(
            "Backlog",
            "Fills not yet in TradeNote.",
            targets(("max(traderops_journal_backlog)", "")),
            th=thresholds((None, "green"), (10, "orange"), (100, "red")),
        ),
        stat(
            "Dead letters",
            "Fills that gave up after retries; replay with `trader-ops journal replay`.",
            targets(("max(traderops_journal_dead_letters)", "")),
            th=thresholds((None, "green"), (1, "red")),
        ),
        stat(
            "Fills synced (time range)",
            "Fills written to TradeNote in the time range.",
            targets(("sum(increase(traderops_journal_fills_synced_total[$__range]))", "")),
            decimals=0,
        ),
        stat(
            "Sync p99 (5m)",
            "Fill to TradeNote upsert, p99 (recording rule).",
            targets(("traderops:journal_sync_seconds:p99_5m", "")),
            unit="s",
            th=thresholds((None, "green"), (5, "orange"), (30, "red")),
        ),
        timeseries(
            "Backlog and dead letters",
            "The backlog should drain to 0; any dead letter needs a human.",
            targets(
                ("max(traderops_journal_backlog)", "backlog"),
                ("max(traderops_journal_dead_letters)", "dead letters"),
            ),
            minimum=0,
        ),
        timeseries(
            "Sync latency",
            "traderops_journal_sync_seconds p50/p95/p99.",
            quantiles("traderops_journal_sync_seconds"),
            unit="s",
        ),
        timeseries(
            "Fills synced and errors",
            "Writes to TradeNote per second, and failures by reason (retried with backoff).",
            targets(
                ("sum(rate(traderops_journal_fills_synced_total[$__rate_interval]))", "synced"),
                (
                    "sum by (reason) (rate(traderops_journal_errors_total[$__rate_interval]))",
                    "error: {{reason}}",
                ),
            ),
            unit="reqps",
            w=24,
        ),
        row("Kairos (scheduler)"),
        timeseries(
            "Runs by outcome",
            "Job runs per interval by outcome (ok, failed, missed, ...).",
            targets(
                (
                    f"sum by (outcome) (increase(traderops_kairos_runs_total{strat}[$__rate_interval]))",
                    "{{outcome}}",
                )
            ),
            bars=True,
            stack=True,
        ),
        table(
            "Runs by strategy and outcome (time range)",
            "Run counts over the time range.",
            targets(
                (
                    f"sum by (exported_job, outcome) (increase(traderops_kairos_runs_total{strat}[$__range]))",
                    "",
                ),
                instant=True,
                fmt="table",
            ),
        ),
        table(
            "Next run",
            "Next scheduled run per strategy job (UTC) and the time left.",
            targets(
                (
                    f"max by (exported_job) (traderops_kairos_next_run_timestamp_seconds{strat}) * 1000",
                    "next run",
                ),
                (
                    f"max by (exported_job) (traderops_kairos_next_run_timestamp_seconds{strat}) - time()",
                    "in",
                ),
                instant=True,
                fmt="table",
            ),
            units={"Value #A": "dateTimeAsIso", "Value #B": "s"},
        ),
        timeseries(
            "Run duration p99 by strategy",
            "traderops_kairos_run_seconds.",
            targets(
                (
                    "histogram_quantile(0.99, sum by (le, exported_job) "
                    f"(rate(traderops_kairos_run_seconds_bucket{strat}[$__rate_interval])))",
                    "{{exported_job}}",
                )
            ),
            unit="s",
        ),
        timeseries(
            "Signals posted by action",
            "traderops_kairos_signals_total.",
            targets(
                (
                    f"sum by (exported_job, action) (increase(traderops_kairos_signals_total{strat}[$__rate_interval]))",
                    "{{exported_job}} {{action}}",
                )
            ),
            bars=True,
            stack=True,
            w=24,
        ),
    ]
    return dashboard(
        "traderops-journal-kairos",
        "trader-ops / Journal and Kairos",
        "TradeNote sync backlog, latency and dead letters; Kairos runs by outcome "
        "and the next scheduled runs.",
        panels,
        variables=[STRATEGY],
        alert_regex="Journal.*|Kairos.*",
    )


def health() -> dict[str, Any]:
    http = "traderops_http_requests_total"
    panels = [
        row("Targets"),
        stat(
            "Targets up",
            "Each scrape target (1 = scraped fine).",
            targets(("up", "{{job}} {{instance}}")),
            mappings=UP,
            th=thresholds((None, "red"), (1, "green")),
            w=12,
        ),
        state_timeline(
            "Target history",
            "Scrape success over time.",
            targets(("up", "{{job}} {{instance}}")),
            mappings=UP,
            th=thresholds((None, "red"), (1, "green")),
        ),
        stat(
            "Execution writes unresolved",
            "Alerts held unsent and orders awaiting reconciliation because a Redis write's "
            "outcome is unknown: normal for seconds during a Redis restart; "
            "ExecutionStateUnresolved fires after 2 minutes.",
            targets(("max(traderops_execution_unresolved) or vector(0)", "")),
            th=thresholds((None, "green"), (1, "red")),
        ),
        row("HTTP (datahub)"),
        timeseries(
            "Requests by route",
            "traderops_http_requests_total per second.",
            targets((f"sum by (route) (rate({http}[$__rate_interval]))", "{{route}}")),
            unit="reqps",
        ),
        timeseries(
            "Errors by route and status",
            "4xx and 5xx answers per second.",
            targets(
                (
                    f'sum by (route, status) (rate({http}{{status=~"4..|5.."}}[$__rate_interval]))',
                    "{{route}} {{status}}",
                )
            ),
            unit="reqps",
        ),
        timeseries(
            "5xx ratio",
            "Share of requests answered with a 5xx.",
            targets(
                (
                    f'sum(rate({http}{{status=~"5.."}}[$__rate_interval])) / '
                    f"sum(rate({http}[$__rate_interval]))",
                    "5xx",
                )
            ),
            unit="percentunit",
            th=thresholds((None, "green"), (0.01, "red")),
            show_thresholds=True,
            minimum=0,
        ),
        timeseries(
            "Request latency p99 by route",
            "traderops_http_request_seconds.",
            targets(
                (
                    "histogram_quantile(0.99, sum by (le, route) "
                    "(rate(traderops_http_request_seconds_bucket[$__rate_interval])))",
                    "{{route}}",
                )
            ),
            unit="s",
        ),
        row("Market data and WebSocket"),
        timeseries(
            "Quote rate",
            "Quotes published to the fan-out channel (by feed) and "
            "received back by datahub instances.",
            targets(
                (
                    "sum by (feed) (rate(traderops_quotes_published_total[$__rate_interval]))",
                    "published {{feed}}",
                ),
                ("sum(rate(traderops_quotes_received_total[$__rate_interval]))", "received"),
            ),
            unit="reqps",
        ),
        stat(
            "Quote publisher leases",
            "Processes holding the quote-publisher lease: exactly 1 expected.",
            targets(("sum(traderops_quote_publisher)", "")),
            th=thresholds((None, "red"), (1, "green"), (2, "red")),
            w=6,
            h=8,
        ),
        stat(
            "WebSocket clients",
            "Connected /stream clients.",
            targets(("sum(traderops_ws_clients)", "")),
            graph=True,
            w=6,
            h=8,
        ),
        timeseries(
            "WebSocket frames and drops",
            "Frames sent per second; slow or broken clients dropped, by reason.",
            targets(
                ("sum(rate(traderops_ws_messages_sent_total[$__rate_interval]))", "frames sent"),
                (
                    "sum by (reason) (rate(traderops_ws_dropped_total[$__rate_interval]))",
                    "dropped: {{reason}}",
                ),
            ),
            unit="reqps",
        ),
        timeseries(
            "Cache hit ratio",
            "Redis cache hits per lookup, by cache.",
            targets(
                (
                    'sum by (cache) (rate(traderops_cache_requests_total{result=~"hit|memory"}[$__rate_interval])) / '
                    "sum by (cache) (rate(traderops_cache_requests_total[$__rate_interval]))",
                    "{{cache}}",
                )
            ),
            unit="percentunit",
            minimum=0,
        ),
        timeseries(
            "Feed errors",
            "traderops_feed_errors_total per second by feed and op.",
            targets(
                (
                    "sum by (feed, op) (rate(traderops_feed_errors_total[$__rate_interval]))",
                    "{{feed}} {{op}}",
                )
            ),
            unit="reqps",
            w=24,
        ),
        row("Alerts"),
        table(
            "Firing alerts",
            "Every alert firing now (the ALERTS series).",
            targets(('ALERTS{alertstate="firing"}', ""), instant=True, fmt="table"),
            exclude=("Time", "Value", "__name__", "alertstate"),
            w=24,
        ),
    ]
    return dashboard(
        "traderops-health",
        "trader-ops / Service health",
        "Scrape targets, HTTP traffic and errors, WebSocket clients, quote flow.",
        panels,
        alert_regex="TargetDown|NoQuotesDuringSession",
    )


DASHBOARDS = {
    "latency-slos.json": latency,
    "risk-pnl.json": risk,
    "trading-activity.json": trading,
    "journal-kairos.json": journal_kairos,
    "service-health.json": health,
}


def render() -> dict[str, str]:
    return {name: json.dumps(build(), indent=2) + "\n" for name, build in DASHBOARDS.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the JSON is stale")
    args = parser.parse_args(argv)
    stale = []
    for name, text in render().items():
        path = OUT_DIR / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            OUT_DIR.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print(
            f"stale dashboards (run python3 grafana/generate.py): {', '.join(stale)}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
