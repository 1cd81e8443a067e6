#!/usr/bin/env bash
# Static checks and unit tests of the Prometheus configuration and rules:
#   promtool check config  deployment/prometheus/prometheus.yml   (also checks the rule files it loads)
#   promtool check rules   deployment/prometheus/rules/*.yml
#   promtool test rules    deployment/prometheus/tests/*.yml
#   deployment/alertmanager/render.py with every channel filled in (dummy values), then
#   amtool check-config on the result and amtool config routes test for the routing tree
# Exits non-zero on the first failure. PROM_DIR, AM_DIR, PROMTOOL, AMTOOL and PYTHON
# override the defaults.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROM_DIR="${PROM_DIR:-$ROOT/deployment/prometheus}"
PROMTOOL="${PROMTOOL:-promtool}"
AM_DIR="${AM_DIR:-$ROOT/deployment/alertmanager}"
AMTOOL="${AMTOOL:-amtool}"
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi

if ! command -v "$PROMTOOL" >/dev/null 2>&1; then
  echo "test-observability: $PROMTOOL not found (run \`make setup\`)" >&2
  exit 127
fi
if ! command -v "$AMTOOL" >/dev/null 2>&1; then
  echo "test-observability: $AMTOOL not found (run \`make setup\`: prometheus-alertmanager)" >&2
  exit 127
fi

shopt -s nullglob
rules=("$PROM_DIR"/rules/*.yml)
tests=("$PROM_DIR"/tests/*.yml)
if [ ${#rules[@]} -eq 0 ] || [ ${#tests[@]} -eq 0 ]; then
  echo "test-observability: no rule files or no rule tests under $PROM_DIR" >&2
  exit 1
fi

echo "== promtool check config"
"$PROMTOOL" check config "$PROM_DIR/prometheus.yml"
echo "== promtool check rules"
"$PROMTOOL" check rules "${rules[@]}"
echo "== promtool test rules"
"$PROMTOOL" test rules "${tests[@]}"

echo "== alertmanager: render (every channel, dummy values) + amtool check-config"
AM_OUT="$(mktemp -d)"
trap 'rm -rf "$AM_OUT"' EXIT
env TRADEROPS_ALERTS_TELEGRAM_BOT_TOKEN=123456:dummy TRADEROPS_ALERTS_TELEGRAM_CHAT_ID=-1001 \
  TRADEROPS_ALERTS_DISCORD_WEBHOOK_URL=https://discord.invalid/api/webhooks/1/dummy \
  TRADEROPS_ALERTS_SMTP_SMARTHOST=smtp.invalid:587 TRADEROPS_ALERTS_SMTP_FROM=alerts@example.invalid \
  TRADEROPS_ALERTS_EMAIL_TO=trader@example.invalid TRADEROPS_ALERTS_SMTP_USERNAME=u \
  TRADEROPS_ALERTS_SMTP_PASSWORD=p TRADEROPS_ALERTS_WEBHOOK_URL=http://127.0.0.1:9/hook \
  "$PYTHON" "$AM_DIR/render.py" --out-dir "$AM_OUT"
"$AMTOOL" check-config "$AM_OUT/alertmanager.yml"

echo "== amtool config routes test"
route() { # route EXPECTED_RECEIVER LABEL=VALUE...
  local want="$1"; shift
  local got
  got="$("$AMTOOL" config routes test --config.file="$AM_OUT/alertmanager.yml" "$@")"
  if [ "$got" != "$want" ]; then
    echo "route test FAILED: labels [$*] went to '$got', expected '$want'" >&2
    exit 1
  fi
  echo "  [$*] -> $got"
}
route page alertname=KillSwitchEngaged severity=critical
route page alertname=DailyLossLimitReached severity=critical account=paper
route page alertname=NoQuotesDuringSession severity=critical scope=session
route page alertname=NotifyDeadLetters severity=critical
route notify alertname=WebhookLatencyHigh severity=warning
route notify alertname=KairosRunMissed severity=warning
route notify alertname=SomethingUnlabelled

echo "test-observability: OK"
