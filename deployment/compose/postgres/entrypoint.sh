#!/bin/sh
# First start (empty $PGDATA): initdb with POSTGRES_USER as the superuser and
# POSTGRES_PASSWORD (scram-sha-256 over the network), then POSTGRES_DB with PostGIS, on
# the Unix socket only. Every start: exec postgres listening on all interfaces (the
# container's network; compose publishes no port for it).
set -eu
: "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"
user="${POSTGRES_USER:-tradenote}"
db="${POSTGRES_DB:-tradenote}"
sock="${POSTGRES_SOCKET_DIR:-/tmp}"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  echo "trader-ops-postgres: initialising $PGDATA (database $db, user $user, PostGIS)"
  pwfile="$(mktemp)"
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  initdb -D "$PGDATA" -U "$user" --pwfile="$pwfile" -E UTF8 --no-instructions \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -c unix_socket_directories=$sock" -w -t 60 start >/dev/null
  psql -h "$sock" -U "$user" -d postgres -v ON_ERROR_STOP=1 -qAt \
    -c "CREATE DATABASE \"$db\""
  psql -h "$sock" -U "$user" -d "$db" -v ON_ERROR_STOP=1 -qAt \
    -c "CREATE EXTENSION IF NOT EXISTS postgis"
  pg_ctl -D "$PGDATA" -m fast -w -t 60 stop >/dev/null
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories="$sock" "$@"
