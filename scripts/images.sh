#!/usr/bin/env bash
# Build the container images for `make up` (docker or podman), offline when no registry is
# reachable. Usage:
#   scripts/images.sh [all|base|wheels|app|redis|prometheus|alertmanager|tradenote|print-env]
#
#   registry reachable  -> the app image FROM python:3.11-slim-bookworm; Redis and Prometheus
#                          from their official images (pulled).
#   no registry (or TRADEROPS_OFFLINE_IMAGES=1)
#                       -> a Debian 12 base built here with debootstrap from apt's mirror,
#                          and Redis and Prometheus images from Debian's packages on top.
#
# The choice is written to build/compose-images.env (TRADEROPS_IMAGE, REDIS_IMAGE,
# PROMETHEUS_IMAGE), which scripts/compose.sh exports before calling compose.
#
# `tradenote` (not part of `all`; the e2e test runs it): with a registry, pulls TradeNote's and
# MongoDB's images; without one, builds TradeNote from its source (the tree that
# deployment/tradenote/build.py builds and caches from TRADENOTE_SOURCE, plus the host's `node`)
# and PostgreSQL + PostGIS from Debian's packages, for the test-only override
# deployment/compose/e2e-tradenote-postgres.yml, and records TRADENOTE_IMAGE / POSTGRES_IMAGE.
# Exit 3: no TradeNote source (or no npm/node) on this machine; nothing built.
# Python dependencies come from a wheelhouse built on the host (.venv's pip, which knows this
# machine's index and CA) into deployment/compose/wheels/, so the image build needs no PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

log() { printf '[images %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'images: %s\n' "$*" >&2; exit 1; }

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# -- engine --------------------------------------------------------------------------------
detect_engine() {
  if [ -n "${TRADEROPS_ENGINE:-}" ]; then echo "$TRADEROPS_ENGINE"; return; fi
  if command -v docker >/dev/null 2>&1 && timeout 10 docker info >/dev/null 2>&1; then
    echo docker; return
  fi
  if command -v podman >/dev/null 2>&1; then echo podman; return; fi
  echo none
}
ENGINE="$(detect_engine)"
case "$ENGINE" in
  docker|podman) ;;
  *) die "neither docker (with a running engine) nor podman is installed.
  Debian/Ubuntu: sudo apt-get install -y podman runc   (or: bash scripts/setup.sh)
  Docker:        https://docs.docker.com/engine/install/" ;;
esac

# -- names -----------------------------------------------------------------------------------
UPSTREAM_PYTHON="${UPSTREAM_PYTHON_IMAGE:-docker.io/library/python:3.11-slim-bookworm}"
UPSTREAM_REDIS="${UPSTREAM_REDIS_IMAGE:-docker.io/library/redis:7.2-bookworm}"
UPSTREAM_PROMETHEUS="${UPSTREAM_PROMETHEUS_IMAGE:-docker.io/prom/prometheus:v2.53.2}"
LOCAL_BASE="${LOCAL_BASE_IMAGE:-localhost/trader-ops-debian:bookworm}"
LOCAL_REDIS="localhost/trader-ops-redis:bookworm"
LOCAL_PROMETHEUS="localhost/trader-ops-prometheus:bookworm"
LOCAL_ALERTMANAGER="localhost/trader-ops-alertmanager:bookworm"  # always built here (render.py inside)
LOCAL_POSTGRES="localhost/trader-ops-postgres:bookworm"
LOCAL_TRADENOTE_REPO="localhost/trader-ops-tradenote"  # tag: <version>-<source hash>-<recipe hash>
UPSTREAM_TRADENOTE="${UPSTREAM_TRADENOTE_IMAGE:-docker.io/eleventrading/tradenote:19.0.3}"
UPSTREAM_MONGO="${UPSTREAM_MONGO_IMAGE:-docker.io/library/mongo:7.0}"
UPSTREAM_DEBIAN="${UPSTREAM_DEBIAN_IMAGE:-docker.io/library/debian:bookworm-slim}"
APP_IMAGE="${TRADEROPS_IMAGE:-localhost/trader-ops:latest}"
STATE="$ROOT/build/compose-images.env"
WHEELS="$ROOT/deployment/compose/wheels"
PULL_TIMEOUT="${TRADEROPS_PULL_TIMEOUT:-45}"

image_exists() {
  if [ "$ENGINE" = podman ]; then podman image exists "$1"; else docker image inspect "$1" >/dev/null 2>&1; fi
}

build() { # build TAG CONTEXT FILE [ARGS...]
  local tag="$1" ctx="$2" file="$3"; shift 3
  local fmt=()
  # podman's default OCI format drops HEALTHCHECK; the docker format keeps it.
  [ "$ENGINE" = podman ] && fmt=(--format docker)
  log "building $tag ($file)"
  local t0=$SECONDS
  local out; out="$(mktemp)"
  if ! "$ENGINE" build "${fmt[@]}" -t "$tag" -f "$file" "$@" "$ctx" >"$out" 2>&1; then
    tail -n 40 "$out" >&2; rm -f "$out"; die "building $tag failed (last lines above)"
  fi
  rm -f "$out"
  log "built $tag in $((SECONDS - t0)) s"
}

# -- registry or offline? -------------------------------------------------------------------
offline_mode() {
  case "${TRADEROPS_OFFLINE_IMAGES:-auto}" in
    1|true|yes) return 0 ;;
    0|false|no) return 1 ;;
  esac
  if [ -f "$STATE" ] && grep -q '^TRADEROPS_IMAGES_MODE=offline' "$STATE"; then return 0; fi
  if [ -f "$STATE" ] && grep -q '^TRADEROPS_IMAGES_MODE=registry' "$STATE"; then return 1; fi
  image_exists "$UPSTREAM_PYTHON" && return 1
  log "trying the registry: pull $UPSTREAM_PYTHON (timeout ${PULL_TIMEOUT}s)"
  if timeout "$PULL_TIMEOUT" "$ENGINE" pull -q "$UPSTREAM_PYTHON" >/dev/null 2>&1; then
    return 1
  fi
  log "no registry reachable: building offline images from Debian packages"
  return 0
}

apt_mirror() {
  local m
  m="$(
    {
      grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{for (i = 2; i <= NF; i++) print $i}' || true
      grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
        awk '{for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; break}}' || true
    } | grep -E '/debian/?$' | head -n1
  )" || true
  echo "${m:-http://deb.debian.org/debian}"
}

# -- steps -----------------------------------------------------------------------------------
build_base() {
  if image_exists "$LOCAL_BASE"; then log "$LOCAL_BASE exists"; return; fi
  command -v debootstrap >/dev/null || die "debootstrap is missing: sudo apt-get install -y debootstrap (or bash scripts/setup.sh)"
  local mirror rootfs t0=$SECONDS
  mirror="$(apt_mirror)"
  rootfs="$(mktemp -d /var/tmp/trader-ops-rootfs.XXXXXX)"
  # shellcheck disable=SC2064
  trap "$SUDO rm -rf '$rootfs'" EXIT
  log "debootstrap bookworm (minbase) from $mirror: about a minute"
  $SUDO debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >/dev/null
  # The same suites as the host (updates, security) so images get fixes; no caches, no ids.
  $SUDO tee "$rootfs/etc/apt/sources.list" >/dev/null <<SRC
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb ${mirror%/debian}/debian-security bookworm-security main
SRC
  $SUDO rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log
  $SUDO truncate -s 0 "$rootfs/etc/machine-id" 2>/dev/null || true
  $SUDO tar -C "$rootfs" -c . | "$ENGINE" import --change 'CMD ["/bin/bash"]' - "$LOCAL_BASE" >/dev/null \
    2> >(grep -Ev '^(Getting image|Copying (blob|config)|Writing manifest|Storing signatures)' >&2)
  $SUDO rm -rf "$rootfs"
  trap - EXIT
  log "built $LOCAL_BASE in $((SECONDS - t0)) s"
}

build_wheels() {
  local pip="$ROOT/.venv/bin/pip" stamp="$WHEELS/.stamp" want
  if [ ! -x "$pip" ]; then
    log "no .venv: the image build will download dependencies from PyPI itself"
    return
  fi
  want="$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)-$("$ROOT/.venv/bin/python" -c 'import sys; print("cp%d%d" % sys.version_info[:2])')"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then log "wheelhouse up to date"; return; fi
  log "building the wheelhouse (dependencies only) into ${WHEELS#"$ROOT"/}"
  local t0=$SECONDS
  find "$WHEELS" -name '*.whl' -delete
  # The locked versions (uv.lock, exported to constraints.txt by `make lock`): the same
  # as make install and the playbook install.
  grep -Ev '^(pip|setuptools|wheel)==' "$ROOT/constraints.txt" >"$WHEELS/constraints.txt"
  # setuptools and wheel too: the image builds the project wheel with --no-index.
  # async-timeout: redis needs it on Python < 3.11.3 (Debian 12 has 3.11.2), not on the host's.
  "$pip" wheel -q -w "$WHEELS" -c "$WHEELS/constraints.txt" . 'setuptools>=77' wheel \
    'async-timeout>=4.0.3' \
    2> >(grep -Ev 'is ignored: it is neither|README.md|return .\\n' >&2)
  rm -f "$WHEELS"/trader_ops-*.whl
  echo "$want" >"$stamp"
  log "wheelhouse: $(find "$WHEELS" -name '*.whl' | wc -l) wheels in $((SECONDS - t0)) s"
}

build_app() {
  build "$APP_IMAGE" "$ROOT" Containerfile --build-arg "BASE_IMAGE=$1"
}

STATE_KEYS="TRADEROPS_IMAGES_MODE TRADEROPS_IMAGE REDIS_IMAGE PROMETHEUS_IMAGE"
kept_state() { # the lines of the state file that `all` does not own (TradeNote's images)
  [ -f "$STATE" ] || return 0
  local re
  re="^($(echo "$STATE_KEYS" | tr ' ' '|'))="
  grep -Ev "$re" "$STATE" | grep -v '^#' || true
}

write_state() { # write_state MODE REDIS PROMETHEUS
  mkdir -p "$(dirname "$STATE")"
  local kept
  kept="$(kept_state)"
  cat >"$STATE" <<ENV
# written by scripts/images.sh; read by scripts/compose.sh (variables already set win)
TRADEROPS_IMAGES_MODE=$1
TRADEROPS_IMAGE=$APP_IMAGE
REDIS_IMAGE=$2
PROMETHEUS_IMAGE=$3
ENV
  [ -z "$kept" ] || printf '%s\n' "$kept" >>"$STATE"
  log "images: app $APP_IMAGE, redis $2, prometheus $3 (${STATE#"$ROOT"/})"
}

set_state() { # set_state KEY VALUE: replace or add one line, keep the others
  mkdir -p "$(dirname "$STATE")"
  local tmp
  tmp="$(mktemp)"
  { [ -f "$STATE" ] && grep -v "^$1=" "$STATE" || echo "# written by scripts/images.sh; read by scripts/compose.sh (variables already set win)"; } >"$tmp"
  echo "$1=$2" >>"$tmp"
  mv "$tmp" "$STATE"
}

# -- TradeNote (e2e): upstream images, or built here from the source on PostgreSQL -----------
python_for_tests() {
  if [ -x "$ROOT/.venv/bin/python" ]; then echo "$ROOT/.venv/bin/python"; else echo python3; fi
}

tradenote_build_tree() { # the cached TradeNote build (deployment/tradenote/build.py, under a flock)
  local out rc=0
  out="$(CI=false "$(python_for_tests)" "$ROOT/deployment/tradenote/build.py")" || rc=$?
  [ "$rc" -eq 0 ] || die "building TradeNote from its source failed (deployment/tradenote/build.py, exit $rc)"
  if [ -z "$out" ] || [ ! -f "$out/index.mjs" ]; then
    log "no TradeNote source: set TRADENOTE_SOURCE (tarball, tree, or https://github.com/Eleven-Trading/TradeNote.git#19.0.3)"
    exit 3
  fi
  echo "$out"
}

build_tradenote_local() {
  local node tree recipe tag ctx t0=$SECONDS
  node="$(command -v node || true)"
  [ -n "$node" ] || { log "node is not installed (bash scripts/setup.sh)"; exit 3; }
  tree="$(tradenote_build_tree)"
  # The tag names what is inside: the build (version + source hash, the cache dir's name),
  # the Containerfile, the Node version and the base image.
  recipe="$(
    {
      cat deployment/compose/tradenote/Containerfile
      "$node" --version
      "$ENGINE" image inspect --format '{{.Id}}' "$LOCAL_BASE"
    } | sha256sum | cut -c1-8
  )"
  tag="$LOCAL_TRADENOTE_REPO:$(basename "$tree")-$recipe"
  if image_exists "$tag"; then
    log "$tag exists"
  else
    ctx="$(mktemp -d /var/tmp/trader-ops-tradenote.XXXXXX)"
    # shellcheck disable=SC2064
    trap "rm -rf '$ctx'" EXIT
    # Hard links when the cache is on the same file system (no copy of ~600 MB), else a copy.
    cp -al "$tree" "$ctx/app" 2>/dev/null || { rm -rf "$ctx/app"; cp -a "$tree" "$ctx/app"; }
    cp -L "$node" "$ctx/node"
    build "$tag" "$ctx" deployment/compose/tradenote/Containerfile --build-arg "BASE_IMAGE=$LOCAL_BASE"
    rm -rf "$ctx"
    trap - EXIT
  fi
  set_state TRADENOTE_IMAGE "$tag"
  log "TradeNote image $tag ready in $((SECONDS - t0)) s"
}

tradenote() {
  if ! offline_mode; then
    local img ok=1
    for img in "$UPSTREAM_TRADENOTE" "$UPSTREAM_MONGO"; do
      image_exists "$img" && continue
      log "pull $img (timeout ${PULL_TIMEOUT}s)"
      timeout "$PULL_TIMEOUT" "$ENGINE" pull -q "$img" >/dev/null 2>&1 || { ok=0; break; }
    done
    if [ "$ok" = 1 ]; then
      set_state TRADENOTE_IMAGE "$UPSTREAM_TRADENOTE"
      set_state MONGO_IMAGE "$UPSTREAM_MONGO"
      return
    fi
    log "$img cannot be pulled: building TradeNote here, on PostgreSQL"
  fi
  build_base
  build_tradenote_local
  build "$LOCAL_POSTGRES" deployment/compose/postgres deployment/compose/postgres/Containerfile --build-arg "BASE_IMAGE=$LOCAL_BASE"
  set_state POSTGRES_IMAGE "$LOCAL_POSTGRES"
}

all() {
  build_wheels
  if offline_mode; then
    build_base
    build_app "$LOCAL_BASE"
    build "$LOCAL_REDIS" deployment/compose/redis deployment/compose/redis/Containerfile --build-arg "BASE_IMAGE=$LOCAL_BASE"
    build "$LOCAL_PROMETHEUS" deployment/compose/prometheus deployment/compose/prometheus/Containerfile --build-arg "BASE_IMAGE=$LOCAL_BASE"
    build "$LOCAL_ALERTMANAGER" deployment/alertmanager deployment/compose/alertmanager/Containerfile --build-arg "BASE_IMAGE=$LOCAL_BASE"
    write_state offline "$LOCAL_REDIS" "$LOCAL_PROMETHEUS"
  else
    build_app "$UPSTREAM_PYTHON"
    for img in "$UPSTREAM_REDIS" "$UPSTREAM_PROMETHEUS"; do
      image_exists "$img" || { log "pull $img"; "$ENGINE" pull -q "$img" >/dev/null; }
    done
    build "$LOCAL_ALERTMANAGER" deployment/alertmanager deployment/compose/alertmanager/Containerfile --build-arg "BASE_IMAGE=$UPSTREAM_DEBIAN"
    write_state registry "$UPSTREAM_REDIS" "$UPSTREAM_PROMETHEUS"
  fi
}

t_start=$SECONDS
case "${1:-all}" in
  all) all ;;
  base) build_base ;;
  wheels) build_wheels ;;
  app) build_wheels; build_app "${BASE_IMAGE:-$(offline_mode && echo "$LOCAL_BASE" || echo "$UPSTREAM_PYTHON")}" ;;
  redis) build_base; build "$LOCAL_REDIS" deployment/compose/redis deployment/compose/redis/Containerfile --build-arg "BASE_IMAGE=$LOCAL_BASE" ;;
  prometheus) build_base; build "$LOCAL_PROMETHEUS" deployment/compose/prometheus deployment/compose/prometheus/Containerfile --build-arg "BASE_IMAGE=$LOCAL_BASE" ;;
  alertmanager) build_base; build "$LOCAL_ALERTMANAGER" deployment/alertmanager deployment/compose/alertmanager/Containerfile --build-arg "BASE_IMAGE=$LOCAL_BASE" ;;
  tradenote) tradenote ;;
  print-env) cat "$STATE" 2>/dev/null || true ;;
  *) die "usage: $0 [all|base|wheels|app|redis|prometheus|alertmanager|tradenote|print-env]" ;;
esac
log "done in $((SECONDS - t_start)) s"
