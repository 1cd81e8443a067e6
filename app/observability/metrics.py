"""Every Prometheus metric trader-ops exports, defined once (seconds, base units)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# 100 microseconds .. 10 seconds: the latencies we care about span five decades.
LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
# The risk engine runs in microseconds: finer resolution at the bottom.
RISK_BUCKETS = (
    0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.01,
)  # fmt: skip

# -- HTTP / datahub -------------------------------------------------------------
HTTP_REQUESTS = Counter(
    "traderops_http_requests_total", "HTTP requests served", ["route", "method", "status"]
)
HTTP_LATENCY = Histogram(
    "traderops_http_request_seconds", "HTTP request latency", ["route"], buckets=LATENCY_BUCKETS
)
WEBHOOK_LATENCY = Histogram(
    "traderops_webhook_latency_seconds",
    "Webhook receipt to decision answered",
    buckets=LATENCY_BUCKETS,
)
WEBHOOK_ALERTS = Counter("traderops_webhook_alerts_total", "Webhook alerts by outcome", ["outcome"])
HTTP_CONNECTIONS_CLOSED = Counter(
    "traderops_http_connections_closed_total",
    "Connections the datahub closed on a slow or greedy client (timeout, cap, oversize head)",
    ["reason"],
)

# -- market data ----------------------------------------------------------------
FEED_LATENCY = Histogram(
    "traderops_feed_request_seconds",
    "Feed request latency",
    ["feed", "op"],
    buckets=LATENCY_BUCKETS,
)
FEED_ERRORS = Counter("traderops_feed_errors_total", "Feed request failures", ["feed", "op"])
QUOTES_PUBLISHED = Counter(
    "traderops_quotes_published_total", "Quotes published to the fan-out channel", ["feed"]
)
QUOTES_RECEIVED = Counter(
    "traderops_quotes_received_total", "Quotes received from the fan-out channel"
)
QUOTE_PUBLISHER = Gauge(
    "traderops_quote_publisher", "1 when this process holds the quote-publisher lease"
)
CACHE_REQUESTS = Counter(
    "traderops_cache_requests_total", "Redis cache lookups", ["cache", "result"]
)
WS_CLIENTS = Gauge("traderops_ws_clients", "Connected WebSocket stream clients")
WS_DROPPED = Counter("traderops_ws_dropped_total", "WebSocket clients dropped", ["reason"])
WS_MESSAGES = Counter("traderops_ws_messages_sent_total", "WebSocket frames sent")

# -- execution and risk -----------------------------------------------------------
RISK_CHECK_LATENCY = Histogram(
    "traderops_risk_check_seconds", "Full pre-trade risk evaluation", buckets=RISK_BUCKETS
)
RISK_DENIALS = Counter("traderops_risk_denials_total", "Orders denied by risk", ["check"])
ORDER_LATENCY = Histogram(
    "traderops_order_latency_seconds",
    "Broker order round trip",
    ["broker"],
    buckets=LATENCY_BUCKETS,
)
ORDERS = Counter("traderops_orders_total", "Order status transitions", ["broker", "status"])
FILLS = Counter("traderops_fills_total", "Fills", ["broker"])
EXECUTION_UNRESOLVED = Gauge(
    "traderops_execution_unresolved",
    "Alerts held unsent and orders awaiting reconciliation: a Redis write's outcome is unknown",
)
BROKER_ERRORS = Counter("traderops_broker_errors_total", "Broker call failures", ["broker", "op"])
KILL_SWITCH = Gauge(
    "traderops_kill_switch_engaged", "Kill switch: 0 ACTIVE, 1 REDUCING, 2 HALTED", ["account"]
)
CIRCUIT_BREAKER = Gauge("traderops_circuit_breaker_open", "1 while the circuit breaker is open")
DAILY_PNL = Gauge("traderops_daily_pnl_dollars", "Realised + unrealised P&L today", ["account"])
DAILY_LOSS_LIMIT = Gauge(
    "traderops_daily_loss_limit_dollars", "Configured daily loss limit", ["account"]
)
EXPOSURE = Gauge("traderops_exposure_dollars", "Gross exposure", ["account"])
OPEN_POSITIONS = Gauge("traderops_open_positions", "Open positions", ["account"])

# -- journal ------------------------------------------------------------------
JOURNAL_BACKLOG = Gauge("traderops_journal_backlog", "Fills not yet in TradeNote")
JOURNAL_DEAD_LETTERS = Gauge("traderops_journal_dead_letters", "Fills in the dead-letter stream")
JOURNAL_SYNC_LATENCY = Histogram(
    "traderops_journal_sync_seconds", "Fill to TradeNote upsert", buckets=LATENCY_BUCKETS
)
JOURNAL_SYNCED = Counter("traderops_journal_fills_synced_total", "Fills written to TradeNote")
JOURNAL_ERRORS = Counter("traderops_journal_errors_total", "TradeNote write failures", ["reason"])
JOURNAL_DEAD_LETTERED = Counter(
    "traderops_journal_dead_lettered_total", "Fills moved to the dead-letter stream", ["reason"]
)
JOURNAL_LAST_SYNC = Gauge(
    "traderops_journal_last_sync_timestamp_seconds", "Unix time of the last TradeNote write"
)
JOURNAL_BATCH_LATENCY = Histogram(
    "traderops_journal_batch_seconds", "One batch upserted into TradeNote", buckets=LATENCY_BUCKETS
)

# -- kairos -------------------------------------------------------------------
KAIROS_RUNS = Counter("traderops_kairos_runs_total", "Job runs", ["job", "outcome"])
KAIROS_RUN_LATENCY = Histogram(
    "traderops_kairos_run_seconds", "Job run duration", ["job"], buckets=LATENCY_BUCKETS
)
KAIROS_SIGNALS = Counter("traderops_kairos_signals_total", "Signals posted", ["job", "action"])
KAIROS_NEXT_RUN = Gauge("traderops_kairos_next_run_timestamp_seconds", "Next run", ["job"])

# -- trade notifications (app/notify) ---------------------------------------------------
NOTIFY_SENT = Counter(
    "traderops_notify_messages_total", "Notification messages delivered", ["kind"]
)
NOTIFY_EVENTS = Counter(
    "traderops_notify_events_total", "Events notified (several per coalesced message)", ["kind"]
)
NOTIFY_FAILURES = Counter(
    "traderops_notify_failures_total", "Failed delivery attempts (retried)", ["kind"]
)
NOTIFY_DEAD_LETTERS = Counter(
    "traderops_notify_dead_letters_total",
    "Notification messages given up after the last retry (in the notify dead-letter stream)",
    ["kind"],
)
