# The real TradeNote for the journal's oracle and browser tests: built once per source
# (npm install + vite build, ~1 min) into ~/.cache/trader-ops/tradenote (TRADEROPS_TEST_CACHE).
# Source: TRADENOTE_SOURCE (tarball, tree, or https://github.com/Eleven-Trading/TradeNote.git#19.0.3),
# else ../shared/peers/tradenote next to the repository. Without a source it prints why and
# goes on (the tests then skip, or fail under CI=true).
# Sourced by scripts/setup.sh (after 30-journal.sh: node, npm, PostgreSQL).
python3 deployment/tradenote/build.py || { [ "${CI:-}" != "true" ] || exit 1; }
# The assets TradeNote's index.html loads from cdn.jsdelivr.net (bootstrap, popper, font-awesome,
# unicons, quill), served by tests/browser/test_tradenote_ui.py from npm packages.
(
  cd tests/tradenote/cdn
  if [ ! -d node_modules/bootstrap ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    echo "setup: npm ci (TradeNote's CDN assets) in tests/tradenote/cdn"
    npm ci --no-audit --no-fund --loglevel=error
  fi
)
