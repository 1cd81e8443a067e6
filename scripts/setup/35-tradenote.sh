# The real TradeNote for the journal's oracle and browser tests: built once per source
# (npm install + vite build, ~1 min) into ~/.cache/trader-ops/tradenote (TRADEROPS_TEST_CACHE).
# Source: TRADENOTE_SOURCE (tarball, tree, or https://github.com/Eleven-Trading/TradeNote.git#19.0.3),
# else ../shared/peers/tradenote next to the repository. Without a source it prints why and
# goes on (the tests then skip, or fail under CI=true).
# Sourced by scripts/setup.sh (after 30-journal.sh: node, npm, PostgreSQL).
python3 -m tests.tradenote.build || { [ "${CI:-}" != "true" ] || exit 1; }
