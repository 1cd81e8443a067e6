# Journal tests: TradeNote's backend = parse-server 7 (npm, the major TradeNote pins) on
# PostgreSQL with PostGIS, both started by the tests on free loopback ports.
# Sourced by scripts/setup.sh (which defines apt_install).
apt_install postgresql postgresql-15-postgis-3
# node/npm may come from NodeSource (its nodejs bundles npm; Debian's npm would conflict)
command -v node >/dev/null || apt_install nodejs
command -v npm >/dev/null || apt_install npm
# Debian's postgresql package may start a system cluster; the tests run their own.
(
  cd tests/parse
  if [ ! -d node_modules/parse-server ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    echo "setup: npm ci (parse-server@7, express@4) in tests/parse"
    if [ -f package-lock.json ]; then
      npm ci --no-audit --no-fund --loglevel=error
    else
      npm install --no-audit --no-fund --loglevel=error
    fi
  fi
)
