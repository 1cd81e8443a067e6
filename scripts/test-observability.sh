#!/usr/bin/env bash
# Static checks and unit tests of the Prometheus configuration and rules:
#   promtool check config  deployment/prometheus/prometheus.yml   (also checks the rule files it loads)
#   promtool check rules   deployment/prometheus/rules/*.yml
#   promtool test rules    deployment/prometheus/tests/*.yml
# Exits non-zero on the first failure. PROM_DIR and PROMTOOL override the defaults.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROM_DIR="${PROM_DIR:-$ROOT/deployment/prometheus}"
PROMTOOL="${PROMTOOL:-promtool}"

if ! command -v "$PROMTOOL" >/dev/null 2>&1; then
  echo "test-observability: $PROMTOOL not found (run \`make setup\`)" >&2
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
echo "test-observability: OK"
