#!/usr/bin/env bash
# The container stack with whatever engine is installed: `docker compose`, `podman compose`
# or podman-compose (also the one set-up installs in .venv-compose).
#
#   scripts/compose.sh up      [SERVICE...]  write .env on first run, build images if missing,
#                                            start, wait until healthy, print the URLs
#   scripts/compose.sh down    [--volumes]   stop and remove the stack (volumes kept unless asked)
#   scripts/compose.sh logs    [SERVICE...]  follow logs (LOGS_FOLLOW=0: print and exit)
#   scripts/compose.sh ps
#   scripts/compose.sh images                scripts/images.sh (offline when no registry)
#   scripts/compose.sh wait                  wait until every container is healthy
#   scripts/compose.sh env                   write .env if absent (never prints secrets)
#   scripts/compose.sh engine                print the compose command that would be used
#   scripts/compose.sh e2e                   the end-to-end test (tests/e2e) under pytest
#
# Settings (environment): TRADEROPS_PROFILES ("journal observability" = everything, the
# default; "core" = datahub, kairos, redis only), TRADEROPS_ENV_FILE (.env),
# COMPOSE_PROJECT_NAME (trader-ops), TRADEROPS_ENGINE (docker|podman), TRADEROPS_BIND,
# TRADEROPS_DATAHUB_PORT, GRAFANA_PORT, TRADENOTE_PORT, TRADEROPS_WAIT_TIMEOUT (180 s),
# TRADEROPS_TRADENOTE_DB (mongo, the default; postgres = the test-only override
# deployment/compose/e2e-tradenote-postgres.yml, images from `scripts/images.sh tradenote`).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

log() { printf '[compose %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'compose: %s\n' "$*" >&2; exit 1; }

PROJECT="${COMPOSE_PROJECT_NAME:-trader-ops}"
ENV_FILE="${TRADEROPS_ENV_FILE:-$ROOT/.env}"
COMPOSE_FILE_PATH="$ROOT/docker-compose.yml"
IMAGES_STATE="$ROOT/build/compose-images.env"
WAIT_TIMEOUT="${TRADEROPS_WAIT_TIMEOUT:-180}"

INSTALL_HINT='no container engine with compose found. Install one of:
  Podman (Debian/Ubuntu):  sudo apt-get install -y podman runc && python3 -m venv .venv-compose && .venv-compose/bin/pip install podman-compose
                           (or simply: bash scripts/setup.sh, which does this and the podman settings)
  Docker:                  https://docs.docker.com/engine/install/ (includes the compose plugin)'

# -- engine detection -------------------------------------------------------------------------
ENGINE=""
COMPOSE=()
detect() {
  local want="${TRADEROPS_ENGINE:-}"
  tradenote_db >/dev/null  # a wrong TRADEROPS_TRADENOTE_DB stops here, not in a subshell
  if [ "$want" != podman ] && command -v docker >/dev/null 2>&1 \
    && timeout 10 docker info >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then
    ENGINE=docker; COMPOSE=(docker compose); return 0
  fi
  [ "$want" = docker ] && die "TRADEROPS_ENGINE=docker but \`docker compose\` with a running engine is not available"
  if command -v podman >/dev/null 2>&1; then
    ENGINE=podman
    if command -v podman-compose >/dev/null 2>&1; then
      COMPOSE=(podman-compose); return 0
    fi
    if [ -x "$ROOT/.venv-compose/bin/podman-compose" ]; then
      COMPOSE=("$ROOT/.venv-compose/bin/podman-compose"); return 0
    fi
    # podman >= 4.7 has `podman compose`, a wrapper that needs an external provider anyway.
    if podman compose version >/dev/null 2>&1; then
      COMPOSE=(podman compose); return 0
    fi
    die "podman is installed but podman-compose is not.
  Install it:  python3 -m venv .venv-compose && .venv-compose/bin/pip install podman-compose
  (or: bash scripts/setup.sh)"
  fi
  die "$INSTALL_HINT"
}

ALL_PROFILES="journal observability"
compose_files() {
  local files=(-f "$COMPOSE_FILE_PATH")
  if [ "$ENGINE" = podman ] &&
    [ "$(podman info --format '{{.Host.NetworkBackend}}' 2>/dev/null)" = cni ]; then
    # CNI disables DNS on internal networks: see the comment in that file.
    files+=(-f "$ROOT/deployment/compose/podman-cni.yml")
  fi
  # TradeNote on PostgreSQL (test-only: the e2e test on a machine with no registry).
  local db
  db="$(tradenote_db)"
  [ "$db" = mongo ] || files+=(-f "$ROOT/deployment/compose/e2e-tradenote-postgres.yml")
  echo "${files[@]}"
}
tradenote_db() {
  case "${TRADEROPS_TRADENOTE_DB:-mongo}" in
    mongo|postgres) echo "${TRADEROPS_TRADENOTE_DB:-mongo}" ;;
    *) die "TRADEROPS_TRADENOTE_DB=${TRADEROPS_TRADENOTE_DB}: mongo or postgres" ;;
  esac
}
compose() {
  # Every profile is enabled so that down/ps/logs see all services; `up` names the services.
  local profiles=() files
  for p in $ALL_PROFILES; do profiles+=(--profile "$p"); done
  read -r -a files <<<"$(compose_files)"
  "${COMPOSE[@]}" --env-file "$ENV_FILE" "${files[@]}" -p "$PROJECT" "${profiles[@]}" "$@"
}

# -- .env with random secrets -----------------------------------------------------------------
SECRET_KEYS=(TRADEROPS_WEBHOOK_PASSPHRASE TRADEROPS_WEBHOOK_HMAC_KEY TRADEROPS_ADMIN_API_KEY
  TRADENOTE_APP_ID TRADENOTE_MASTER_KEY MONGO_PASSWORD GRAFANA_ADMIN_PASSWORD)
random_secret() { od -An -tx1 -N24 /dev/urandom | tr -d ' \n'; }

write_env() {
  local created=0 added=()
  if [ ! -e "$ENV_FILE" ]; then
    (umask 077 && cat >"$ENV_FILE" <<HDR
# trader-ops container stack: secrets generated by scripts/compose.sh (make up). Keep private
# (mode 0600, never committed). Edit to set your own values; TRADEROPS_* are the app settings.
HDR
    )
    created=1
  fi
  chmod 0600 "$ENV_FILE"
  for key in "${SECRET_KEYS[@]}"; do
    if ! grep -q "^${key}=" "$ENV_FILE"; then
      printf '%s=%s\n' "$key" "$(random_secret)" >>"$ENV_FILE"
      added+=("$key")
    fi
  done
  if [ "$created" = 1 ]; then
    log "wrote ${ENV_FILE#"$ROOT"/} (mode 0600) with new random secrets (not shown; read the file)"
  elif [ ${#added[@]} -gt 0 ]; then
    log "added to ${ENV_FILE#"$ROOT"/}: ${added[*]} (random, not shown)"
  fi
}

load_image_state() {
  # Image names chosen by scripts/images.sh; variables the user already set win.
  [ -f "$IMAGES_STATE" ] || return 0
  local key value
  while IFS='=' read -r key value; do
    case "$key" in ''|\#*) continue ;; esac
    if [ -z "${!key:-}" ]; then export "$key=$value"; fi
  done <"$IMAGES_STATE"
}

image_exists() {
  if [ "$ENGINE" = podman ]; then podman image exists "$1"; else docker image inspect "$1" >/dev/null 2>&1; fi
}
image_available() { # exists locally, or can be pulled within the timeout
  image_exists "$1" && return 0
  log "pulling $1"
  timeout "${TRADEROPS_PULL_TIMEOUT:-60}" "$ENGINE" pull -q "$1" >/dev/null 2>&1
}

# -- which services ----------------------------------------------------------------------------
select_services() {
  # Prints the services to start: the core, plus each requested profile whose images can be
  # had. Upstream images that cannot be pulled (no registry) drop their services with a
  # warning instead of failing the whole stack.
  local profiles="${TRADEROPS_PROFILES:-journal observability}"
  local services=(redis datahub execution kairos)
  image_exists "${TRADEROPS_IMAGE:-localhost/trader-ops:latest}" || die "app image missing: run \`make images\`"
  image_available "${REDIS_IMAGE:-docker.io/library/redis:7.2-bookworm}" ||
    die "Redis image ${REDIS_IMAGE:-docker.io/library/redis:7.2-bookworm} not available: run \`make images\`"
  for p in $profiles; do
    case "$p" in
      core|"") ;;
      journal)
        local db db_image
        db="$(tradenote_db)"
        if [ "$db" = postgres ]; then
          db_image="${POSTGRES_IMAGE:-localhost/trader-ops-postgres:bookworm}"
        else
          db_image="${MONGO_IMAGE:-docker.io/library/mongo:7.0}"
        fi
        if image_available "${TRADENOTE_IMAGE:-docker.io/eleventrading/tradenote:19.0.3}" &&
          image_available "$db_image"; then
          services+=("$db" tradenote journal)
        else
          log "WARNING: profile journal skipped: the TradeNote or $db image cannot be had (no registry reachable? \`scripts/images.sh tradenote\` builds them here)"
        fi ;;
      observability)
        if image_available "${PROMETHEUS_IMAGE:-docker.io/prom/prometheus:v2.53.2}"; then
          services+=(prometheus)
        else
          log "WARNING: prometheus skipped: image not available (run \`make images\`)"
        fi
        if image_available "${GRAFANA_IMAGE:-docker.io/grafana/grafana-oss:12.0.2}"; then
          services+=(grafana)
        else
          log "WARNING: grafana skipped: image cannot be pulled (no registry reachable?)"
        fi ;;
      *) die "unknown profile '$p' (core, journal, observability)" ;;
    esac
  done
  echo "${services[@]}"
}

# -- health ------------------------------------------------------------------------------------
containers() {
  "$ENGINE" ps -a --filter "label=com.docker.compose.project=$PROJECT" --format '{{.Names}}'
}

health_of() { # prints healthy | unhealthy | starting | none | exited
  local name="$1" state
  state="$("$ENGINE" inspect -f '{{.State.Status}}' "$name" 2>/dev/null || echo gone)"
  case "$state" in running) ;; *) echo "$state"; return ;; esac
  if [ "$ENGINE" = podman ]; then
    # Podman 4.3 runs healthchecks from systemd timers; without systemd they never run on
    # their own, so run them here (this also updates the status compose and `ps` show).
    local rc=0
    timeout 20 podman healthcheck run "$name" >/dev/null 2>&1 || rc=$?
    case "$rc" in 0) echo healthy ;; 125) echo none ;; *) echo starting ;; esac
  else
    docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$name"
  fi
}

wait_healthy() {
  local deadline=$((SECONDS + WAIT_TIMEOUT)) names pending status last=""
  log "waiting for the containers to be healthy (timeout ${WAIT_TIMEOUT}s)"
  while :; do
    names="$(containers)"
    [ -n "$names" ] || die "no containers in project $PROJECT"
    pending=()
    for n in $names; do
      status="$(health_of "$n")"
      case "$status" in healthy|none) ;; *) pending+=("$n:$status") ;; esac
    done
    if [ ${#pending[@]} -eq 0 ]; then
      log "all healthy: $(echo "$names" | tr '\n' ' ')"
      return 0
    fi
    if [ "${pending[*]}" != "$last" ]; then log "waiting for: ${pending[*]}"; last="${pending[*]}"; fi
    if [ $SECONDS -ge $deadline ]; then
      log "timed out after ${WAIT_TIMEOUT}s; not healthy: ${pending[*]}"
      for p in "${pending[@]}"; do
        log "--- last log lines of ${p%%:*}"
        "$ENGINE" logs --tail 8 "${p%%:*}" 2>&1 | cut -c1-300 >&2 || true
      done
      return 1
    fi
    sleep 2
  done
}

# -- commands ----------------------------------------------------------------------------------
cmd_up() {
  detect
  write_env
  load_image_state
  image_exists "${TRADEROPS_IMAGE:-localhost/trader-ops:latest}" || {
    log "no app image yet: building the images first (make images)"
    bash "$ROOT/scripts/images.sh" all
    unset TRADEROPS_IMAGE REDIS_IMAGE PROMETHEUS_IMAGE TRADEROPS_IMAGES_MODE
    load_image_state
  }
  local services
  if [ $# -gt 0 ]; then services="$*"; else services="$(select_services)"; fi
  log "starting with ${COMPOSE[*]}: $services"
  local out
  out="$(mktemp)"
  # --no-build: images come from `make images` (offline-capable), never from an implicit build.
  if ! compose up -d --no-build $services >"$out" 2>&1; then
    cat "$out" >&2; rm -f "$out"; die "compose up failed"
  fi
  # Keep the output short: podman-compose echoes every podman command (with the environment).
  grep -E -i 'error|warn' "$out" | grep -v -E 'systemd connection|service_healthy|depends_on' >&2 || true
  rm -f "$out"
  wait_healthy
  local bind="${TRADEROPS_BIND:-127.0.0.1}"
  log "up. datahub http://$bind:${TRADEROPS_DATAHUB_PORT:-8000} (docs /docs, webhook /webhook/tradingview)"
  case " $services " in *" grafana "*) log "      Grafana http://$bind:${GRAFANA_PORT:-3000} (admin password: GRAFANA_ADMIN_PASSWORD in ${ENV_FILE#"$ROOT"/})" ;; esac
  case " $services " in *" tradenote "*) log "      TradeNote http://$bind:${TRADENOTE_PORT:-8080}" ;; esac
  log "secrets (webhook passphrase, admin API key, ...) are in ${ENV_FILE#"$ROOT"/}"
}

cmd_down() {
  detect
  [ -e "$ENV_FILE" ] || write_env
  load_image_state
  local args=() out
  [ "${1:-}" = "--volumes" ] || [ "${1:-}" = "-v" ] && args+=(-v)
  out="$(mktemp)"
  # A short stop timeout: every service handles SIGTERM; don't wait 10 s on each.
  if ! compose down -t 10 "${args[@]}" >"$out" 2>&1; then
    cat "$out" >&2; rm -f "$out"; die "compose down failed"
  fi
  rm -f "$out"
  log "down (project $PROJECT${args:+, volumes removed})"
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  down) shift; cmd_down "$@" ;;
  logs)
    shift; detect; [ -e "$ENV_FILE" ] || write_env; load_image_state
    if [ "${LOGS_FOLLOW:-1}" = 1 ]; then compose logs -f --tail=200 "$@"; else compose logs --tail=200 "$@"; fi ;;
  ps) detect; [ -e "$ENV_FILE" ] || write_env; load_image_state; compose ps ;;
  images) shift; exec bash "$ROOT/scripts/images.sh" "${@:-all}" ;;
  wait) detect; wait_healthy ;;
  env) write_env ;;
  engine) detect; echo "$ENGINE: ${COMPOSE[*]}" ;;
  e2e)
    shift
    PY="$ROOT/.venv/bin/python"; [ -x "$PY" ] || PY=python3
    exec "$PY" -m pytest -v -p no:cacheprovider tests/e2e "$@" ;;
  *) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
