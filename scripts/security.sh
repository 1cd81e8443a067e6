#!/usr/bin/env bash
# Security checks: known vulnerabilities in the installed dependencies (pip-audit) and
# a static scan of app/ (bandit, medium severity and up).
#
#   bash scripts/security.sh            # what `make test` runs (via tests/integration/test_security.py)
#   SECURITY_STRICT=1 bash scripts/security.sh   # also fail when pip-audit cannot check
#
# Exit status:
#   0  no known vulnerability, no bandit finding (medium+);
#   1  a vulnerable dependency, or a bandit finding -- always, CI or not;
#   2  a tool is missing from the virtualenv;
#   3  SECURITY_STRICT=1 and pip-audit could not check the dependencies (vulnerability
#      service unreachable, or it knows none of the installed versions).
#
# Why "could not check" is not a failure by default: pip-audit asks PyPI's JSON API
# (or OSV) at run time. When that service is down or filtered, failing would make CI
# red for reasons unrelated to the change under test (a flaky gate gets ignored).
# The script says so loudly instead, and a scheduled job with SECURITY_STRICT=1 (or a
# developer machine with the service reachable) is where the audit is enforced.
# bandit needs no network and is always enforced.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
BIN="$VENV/bin"
STRICT="${SECURITY_STRICT:-0}"
cd "$ROOT"

need() {
  if [[ ! -x "$BIN/$1" ]]; then
    echo "security: $1 is not installed in $VENV (pip install -e '.[dev]')" >&2
    exit 2
  fi
}
need pip-audit
need bandit

status=0

# -- 1. dependencies: pip-audit over the installed virtualenv --------------------------
echo "== pip-audit (installed packages in $VENV)"
report="$(mktemp)"
errors="$(mktemp)"
trap 'rm -f "$report" "$errors"' EXIT
set +e
# --local: only this virtualenv's packages; JSON so vulnerabilities and "could not
# audit" can be told apart (pip-audit exits 0 when it skipped everything).
timeout 300 "$BIN/pip-audit" --local --progress-spinner off --format json \
  --timeout 20 >"$report" 2>"$errors"
audit_rc=$?
set -e
summary="$("$BIN/python" - "$report" "$audit_rc" <<'PY'
import json, sys
path, rc = sys.argv[1], int(sys.argv[2])
try:
    data = json.load(open(path))
except (OSError, ValueError):
    print("unavailable 0 0 0")
    sys.exit()
deps = data.get("dependencies", [])
vulnerable = [d for d in deps if d.get("vulns")]
skipped = [d for d in deps if "skip_reason" in d]
audited = len(deps) - len(skipped)
for d in vulnerable:
    for v in d["vulns"]:
        fixes = ", ".join(v.get("fix_versions") or []) or "no fix yet"
        print(f"VULN {d['name']} {d['version']}: {v['id']} (fixed in: {fixes})", file=sys.stderr)
state = "vulnerable" if vulnerable else ("unchecked" if audited == 0 else "ok")
print(f"{state} {len(deps)} {audited} {len(vulnerable)}")
PY
)"
read -r state total audited vulnerable <<<"$summary"
case "$state" in
  ok)
    echo "pip-audit: $audited of $total packages checked, no known vulnerability"
    if (( audited < total )); then
      echo "pip-audit: $((total - audited)) packages not on PyPI (e.g. this project) were skipped"
    fi
    ;;
  vulnerable)
    echo "pip-audit: $vulnerable vulnerable package(s) -- upgrade them (see VULN lines above)" >&2
    status=1
    ;;
  unchecked | unavailable)
    echo "pip-audit: COULD NOT CHECK any dependency: the vulnerability service is unreachable" >&2
    echo "           or knows none of the installed versions (exit $audit_rc):" >&2
    grep -v '^\s*$' "$errors" | tail -3 | sed 's/^/           /' >&2 || true
    if [[ "$STRICT" == "1" ]]; then
      echo "pip-audit: SECURITY_STRICT=1: failing" >&2
      [[ $status -eq 0 ]] && status=3
    else
      echo "pip-audit: not failing (set SECURITY_STRICT=1 to enforce; see docs/RELIABILITY.md)" >&2
    fi
    ;;
esac

# -- 2. static analysis: bandit on app/, medium severity and up ------------------------
echo "== bandit -r app -ll"
if "$BIN/bandit" -q -r app -ll; then
  echo "bandit: no medium or high severity finding"
else
  echo "bandit: findings above -- fix them, or mark a reviewed false positive with" >&2
  echo "        '# nosec BXXX' and the reason on that line" >&2
  status=1
fi

exit "$status"
